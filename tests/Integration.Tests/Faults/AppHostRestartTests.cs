namespace Integration.Tests;

/// <summary>
/// The whole AppHost stopped and started again on the same data root (the upload service's files and the
/// Worker's Durable Object state): every completed file is still there, intact, and an unfinished tus upload
/// resumes. Two AppHosts one after the other, so this runs alone, apart from the shared fixture.
/// </summary>
[Collection(AppHostRestartCollection.Name)]
public sealed class AppHostRestartTests
{
    [Fact]
    public async Task Every_file_is_still_there_after_the_whole_AppHost_restarts()
    {
        var dataRoot = Path.Combine(Path.GetTempPath(), $"upload-it-restart-{Guid.NewGuid():N}");
        string[] users = [TestContent.UniqueUser("restart"), TestContent.UniqueUser("restart")];
        var stored = new Dictionary<string, List<StoredFile>>();
        SurvivingFiles.UnfinishedUpload unfinished;
        IReadOnlyList<int> workerd;
        try
        {
            var first = new AppOnDataRoot(dataRoot);
            try
            {
                await first.InitializeAsync();
                foreach (var user in users)
                {
                    using var client = first.CreateWorkerClient(user);
                    stored[user] = await SurvivingFiles.StoreAsync(client);
                }

                using var owner = first.CreateWorkerClient(users[0]);
                unfinished = await SurvivingFiles.StartUnfinishedTusUploadAsync(owner);
                workerd = await first.WorkerdProcessesAsync();
            }
            finally
            {
                await first.DisposeAsync();
            }

            await Faults.AssertGoneAsync(workerd, "the AppHost");

            var second = new AppOnDataRoot(dataRoot);
            try
            {
                await second.InitializeAsync();
                foreach (var user in users)
                {
                    using var client = second.CreateWorkerClient(user);
                    await SurvivingFiles.AssertExactlyTheseIntactAsync(client, stored[user]);
                }

                // The upload URL from the first AppHost's Worker, whose port has changed: its path is what counts.
                using var owner = second.CreateWorkerClient(users[0]);
                stored[users[0]].Add(await unfinished.FinishAsync(owner));
                await SurvivingFiles.AssertExactlyTheseIntactAsync(owner, stored[users[0]]);
            }
            finally
            {
                await second.DisposeAsync();
            }
        }
        finally
        {
            try { Directory.Delete(dataRoot, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>An AppHost on a data root the test owns: disposing it stops everything and keeps the data.</summary>
    private sealed class AppOnDataRoot(string dataRoot) : AppFixture(dataRoot, ownsDataRoot: false);
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AppHostRestartCollection
{
    public const string Name = "apphost-restart";
}
