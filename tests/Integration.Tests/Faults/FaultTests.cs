using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Xunit.Abstractions;

namespace Integration.Tests;

/// <summary>
/// Faults in the middle of uploads through the Worker: the upload service killed (SIGKILL) mid-PUT and
/// mid-multipart, the Worker (`wrangler dev`) restarted mid-PUT and mid-PATCH. The client gets an error within
/// a deadline, never a hang; nothing partial becomes visible; every file completed before the fault reads
/// back with its recorded sha256; unfinished tus uploads resume. (Mid-PATCH kills are in TusThroughWorkerTests.)
/// </summary>
[Collection(AppCollection.Name)]
public sealed class FaultTests(AppFixture app, ITestOutputHelper output)
{
    private const int MiB = 1 << 20;

    /// <summary>How long a client may wait for its error once the fault has happened: long, but not a hang.</summary>
    private static readonly TimeSpan ErrorDeadline = TimeSpan.FromSeconds(60);

    private static readonly TimeSpan StepDeadline = TestContent.PollDeadline;

    [Fact]
    public async Task Killing_the_upload_service_mid_put_leaves_no_partial_file_and_loses_nothing()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("crash-put"));
        var stored = await SurvivingFiles.StoreAsync(client);
        var unfinished = await SurvivingFiles.StartUnfinishedTusUploadAsync(client);

        var bytes = new SeededBytes(32 * MiB, seed: 31);
        var stalled = new TaskCompletionSource();
        var resume = new TaskCompletionSource();
        var put = client.PutAsync("/files/victim/put.bin",
            bytes.Range(0, bytes.Length, stallAfter: 8 * MiB, stalled, resume.Task, sendRestAfterStall: true));
        await stalled.Task.WaitAsync(StepDeadline);
        await TestContent.WaitUntilAsync(() => app.InFlightUploadFiles().Length > 0, "the PUT is being written at the service");

        await app.KillAndStartUploadServiceAsync();
        resume.SetResult(); // the client goes on sending into the broken request
        await AssertTheClientGetsAnErrorAsync(put, "PUT after the service was killed");

        Assert.Empty(app.InFlightUploadFiles()); // the restarted store swept what the crash left
        await SurvivingFiles.AssertNotStoredAsync(client, "victim/put.bin");
        stored.Add(await unfinished.FinishAsync(client));
        await SurvivingFiles.AssertExactlyTheseIntactAsync(client, stored);
    }

    [Fact]
    public async Task Killing_the_upload_service_mid_multipart_keeps_the_committed_part_and_nothing_partial()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("crash-multipart"));
        var stored = await SurvivingFiles.StoreAsync(client);
        var unfinished = await SurvivingFiles.StartUnfinishedTusUploadAsync(client);

        // Parts are committed one by one: the first is complete before the second, in flight, is cut.
        var first = TestContent.RandomBytes(MiB + 5);
        var second = new SeededBytes(32 * MiB, seed: 32);
        var stalled = new TaskCompletionSource();
        var resume = new TaskCompletionSource();
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(first), "file", "first.bin" },
            { second.Range(0, second.Length, stallAfter: 8 * MiB, stalled, resume.Task, sendRestAfterStall: true), "file", "second.bin" },
        };
        var post = client.PostAsync("/files?prefix=victim/", form);
        await stalled.Task.WaitAsync(StepDeadline);
        var committed = await TestContent.WaitForFileAsync(client, "victim/first.bin");
        Assert.Equal(TestContent.Sha256Hex(first), committed.Sha256);
        await TestContent.WaitUntilAsync(() => app.InFlightUploadFiles().Length > 0, "the second part is being written at the service");

        await app.KillAndStartUploadServiceAsync();
        resume.SetResult();
        await AssertTheClientGetsAnErrorAsync(post, "multipart POST after the service was killed");

        Assert.Empty(app.InFlightUploadFiles());
        await SurvivingFiles.AssertNotStoredAsync(client, "victim/second.bin");
        stored.Add(committed);
        stored.Add(await unfinished.FinishAsync(client));
        await SurvivingFiles.AssertExactlyTheseIntactAsync(client, stored);
    }

    [Fact]
    public async Task Restarting_the_worker_mid_upload_fails_the_client_promptly_and_a_retry_succeeds()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("worker-restart"));
        var stored = await SurvivingFiles.StoreAsync(client);

        // A PUT and a tus PATCH are both streaming (8 MiB sent) when wrangler dev is stopped under them.
        var bytes = new SeededBytes(32 * MiB, seed: 33);
        var putStalled = new TaskCompletionSource();
        var patchStalled = new TaskCompletionSource();
        var resume = new TaskCompletionSource();
        var put = client.PutAsync("/files/victim/put.bin",
            bytes.Range(0, bytes.Length, stallAfter: 8 * MiB, putStalled, resume.Task, sendRestAfterStall: true));
        var tus = await Tus.CreateAsync(client, bytes.Length, "victim/tus.bin");
        var patch = Tus.PatchAsync(client, tus,
            0, bytes.Range(0, bytes.Length, stallAfter: 8 * MiB, patchStalled, resume.Task, sendRestAfterStall: true));
        await Task.WhenAll(putStalled.Task, patchStalled.Task).WaitAsync(StepDeadline);
        await TestContent.WaitUntilAsync(() => app.InFlightUploadFiles().Length > 0, "the PUT is being written at the service");

        await app.StopWorkerAsync(); // also checks that no workerd survives the stop
        try
        {
            resume.SetResult();
            await AssertTheClientGetsAnErrorAsync(put, "PUT after the worker was stopped");
            await AssertTheClientGetsAnErrorAsync(patch, "PATCH after the worker was stopped");

            // The service saw its request cut: the half-written PUT is dropped, not committed.
            await TestContent.WaitUntilAsync(() => app.InFlightUploadFiles().Length == 0, "the service dropped the cut PUT");
        }
        finally
        {
            await app.StartWorkerAsync(); // whatever happened, the shared fixture gets its Worker back
        }

        await SurvivingFiles.AssertNotStoredAsync(client, "victim/put.bin");
        await SurvivingFiles.AssertNotStoredAsync(client, "victim/tus.bin");

        // Retries: the PUT again from the start, the tus upload from the offset the service kept.
        using (var retry = await client.PutAsync("/files/victim/put.bin", bytes.Range(0, bytes.Length)))
        {
            Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
            var file = (await retry.Content.ReadFromJsonAsync<StoredFile>())!;
            Assert.Equal(bytes.Sha256Hex(), file.Sha256);
            stored.Add(file);
        }

        var offset = await Tus.OffsetAsync(client, tus);
        Assert.InRange(offset, 0, 8 * MiB);
        using (var rest = await Tus.PatchAsync(client, tus, offset, bytes.Range(offset, bytes.Length - offset)))
            Assert.Equal(HttpStatusCode.NoContent, rest.StatusCode);
        stored.Add(await TestContent.WaitForFileAsync(client, "victim/tus.bin"));
        Assert.Equal(bytes.Sha256Hex(), stored[^1].Sha256);
        await SurvivingFiles.AssertExactlyTheseIntactAsync(client, stored);
    }

    /// <summary>The request ends within <see cref="ErrorDeadline"/> with an error response or a broken connection.</summary>
    private async Task AssertTheClientGetsAnErrorAsync(Task<HttpResponseMessage> request, string what)
    {
        var watch = Stopwatch.StartNew();
        string outcome;
        try
        {
            using var response = await request.WaitAsync(ErrorDeadline);
            Assert.False(response.IsSuccessStatusCode, $"{what}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            outcome = $"{(int)response.StatusCode} {response.Content.Headers.ContentType?.MediaType}";
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{what}: no response and no error within {ErrorDeadline.TotalSeconds} s (a hang)");
            throw;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            outcome = $"{ex.GetType().Name}: {ex.Message}";
        }

        output.WriteLine($"{what}: {outcome}, {watch.Elapsed.TotalSeconds:F1} s after the client went on sending");
    }
}
