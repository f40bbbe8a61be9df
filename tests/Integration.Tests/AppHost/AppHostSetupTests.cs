using Aspire.Hosting;

namespace Integration.Tests;

/// <summary>
/// A bad switch stops the AppHost while it builds its graph with an exception that says what to do: the test
/// host that builds it sees the exception and lives on (an Environment.Exit would end this test run).
/// </summary>
public sealed class AppHostSetupTests
{
    [Theory]
    [InlineData("bogus", "unknown upload service mode 'bogus'")]
    [InlineData("wrangler", "--upload-service wrangler is not run by the AppHost")]
    public async Task A_bad_upload_service_mode_is_refused_with_the_reason(string mode, string reason)
    {
        var error = await Assert.ThrowsAsync<AppHostSetupException>(() =>
            DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>([$"--upload-service={mode}"]));

        Assert.Contains(reason, error.Message);
        Assert.Contains("use project, container, shared or auto", error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("--storage=bogus", "unknown storage 'bogus' (Storage:Provider / --storage): use r2, s3 or filesystem")]
    [InlineData("--storage=1", "unknown storage '1'")]
    [InlineData("--storage=r2,filesystem", "unknown storage 'r2,filesystem'")]
    [InlineData("--upload-service=shared --storage=r2", "--storage r2 reaches the bucket through each user's Durable Object")]
    public async Task A_bad_storage_is_refused_with_the_reason(string arguments, string reason)
    {
        var error = await Assert.ThrowsAsync<AppHostSetupException>(() =>
            DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(arguments.Split(' ')));

        Assert.Contains(reason, error.Message);
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")] // the stand-in engine is a shell script
    public async Task Auto_asks_the_container_engine_when_the_runtime_starts_not_while_the_graph_is_built()
    {
        // A stand-in engine that leaves a mark when asked anything.
        var marker = Path.Combine(Path.GetTempPath(), $"engine-asked-{Guid.NewGuid():N}");
        var engine = Path.Combine(Path.GetTempPath(), $"engine-{Guid.NewGuid():N}.sh");
        await File.WriteAllTextAsync(engine, $"#!/bin/sh\ntouch '{marker}'\nexit 1\n");
        File.SetUnixFileMode(engine, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            await using var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(
                ["--upload-service=auto", $"--ASPIRE_CONTAINER_RUNTIME={engine}"]);

            Assert.Contains(appHost.Resources, resource => resource.Name == "user-containers");
            Assert.False(File.Exists(marker), "the container engine was asked while the AppHost built its graph");
        }
        finally
        {
            File.Delete(engine);
            File.Delete(marker);
        }
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")] // the stand-in engines are shell scripts
    public async Task Asking_the_engine_says_whether_it_answers_and_why_not()
    {
        var folder = Directory.CreateTempSubdirectory("engine-");
        try
        {
            async Task<(bool Answers, string Why)> AskAsync(string script, TimeSpan timeout)
            {
                var engine = Path.Combine(folder.FullName, $"engine-{Guid.NewGuid():N}.sh");
                await File.WriteAllTextAsync(engine, "#!/bin/sh\n" + script + "\n");
                File.SetUnixFileMode(engine, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                var image = new Aspire.Hosting.ApplicationModel.ContainerImage(engine, "Dockerfile", folder.FullName, "unused");
                return await image.EngineAnswersAsync(timeout, CancellationToken.None);
            }

            var answering = await AskAsync("exit 0", TimeSpan.FromSeconds(30));
            Assert.True(answering.Answers);
            Assert.EndsWith("info` answered", answering.Why);
            var failing = await AskAsync("exit 1", TimeSpan.FromSeconds(30));
            Assert.False(failing.Answers);
            Assert.EndsWith("info` exited with 1", failing.Why);

            var missing = new Aspire.Hosting.ApplicationModel.ContainerImage(Path.Combine(folder.FullName, "no-such-engine"), "Dockerfile", folder.FullName, "unused");
            Assert.Equal((false, $"`{Path.Combine(folder.FullName, "no-such-engine")}` is not installed"),
                await missing.EngineAnswersAsync(TimeSpan.FromSeconds(30), CancellationToken.None));

            // An engine that hangs is given up on, and killed.
            var pidFile = Path.Combine(folder.FullName, "pid");
            var hanging = await AskAsync($"echo $$ > '{pidFile}'\nexec sleep 300", TimeSpan.FromSeconds(1));
            Assert.False(hanging.Answers);
            Assert.EndsWith("info` did not answer within 1 s", hanging.Why);
            var pid = (await File.ReadAllTextAsync(pidFile)).Trim();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (Directory.Exists($"/proc/{pid}") && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
            Assert.False(Directory.Exists($"/proc/{pid}"), $"the hanging engine (pid {pid}) was left running");
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }
}
