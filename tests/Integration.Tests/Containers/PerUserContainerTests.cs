using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Xunit.Abstractions;

namespace Integration.Tests;

/// <summary>
/// One upload-service instance per user with Cloudflare's lifecycle, through the real Worker and Durable
/// Objects: started by the user's first request, asleep after sleepAfter (SIGTERM), replaced after a crash,
/// at most max_instances at once, its environment exactly what the Durable Object passes.
/// </summary>
[Collection(PerUserAppCollection.Name)]
public sealed class PerUserContainerTests(PerUserAppFixture app, ITestOutputHelper output) : IAsyncLifetime
{
    // Each test starts with all of max_instances free (instances of the test before go to sleep first).
    public Task InitializeAsync() => app.WaitUntilNoInstanceRunsAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Two_users_get_two_instances_with_their_own_process_and_disk()
    {
        var (alice, bob) = (TestContent.UniqueUser("alice"), TestContent.UniqueUser("bob"));
        using var aliceClient = app.CreateWorkerClient(alice);
        using var bobClient = app.CreateWorkerClient(bob);
        var aliceFile = TestContent.RandomBytes(200_000);
        var bobFile = TestContent.RandomBytes(300_000);

        using (var put = await aliceClient.PutAsync("/files/mine.bin", new ByteArrayContent(aliceFile)))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        using (var put = await bobClient.PutAsync("/files/mine.bin", new ByteArrayContent(bobFile)))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);

        var aliceInstance = app.RunningInstance(alice);
        var bobInstance = app.RunningInstance(bob);
        Assert.NotNull(aliceInstance);
        Assert.NotNull(bobInstance);
        Assert.NotEqual(aliceInstance.ProcessId, bobInstance.ProcessId);
        Assert.NotEqual(aliceInstance.Port, bobInstance.Port);
        Assert.NotEqual(aliceInstance.DataDirectory, bobInstance.DataDirectory);
        Assert.True(Directory.Exists(aliceInstance.DataDirectory) && Directory.Exists(bobInstance.DataDirectory));

        Assert.Equal(aliceFile, await aliceClient.GetByteArrayAsync("/files/mine.bin"));
        Assert.Equal(bobFile, await bobClient.GetByteArrayAsync("/files/mine.bin"));
    }

    [Fact]
    public async Task The_first_request_wakes_an_instance_and_the_next_one_is_served_by_it()
    {
        var user = TestContent.UniqueUser("wake");
        using var client = app.CreateWorkerClient(user);
        Assert.Null(app.RunningInstance(user));

        var clock = Stopwatch.StartNew();
        using (var put = await client.PutAsync("/files/first.txt", new ByteArrayContent([1, 2, 3])))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        var wake = clock.Elapsed;
        var woken = app.RunningInstance(user);
        Assert.NotNull(woken);

        clock.Restart();
        using (var list = await client.GetAsync("/files"))
            Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        output.WriteLine($"wake (request sent → 201, instance {woken.Id} started): {wake.TotalMilliseconds:0} ms; " +
            $"the next request on the warm instance: {clock.Elapsed.TotalMilliseconds:0} ms");

        var serving = app.RunningInstance(user);
        Assert.Equal(woken.Id, serving?.Id);
        Assert.Equal(woken.ProcessId, serving?.ProcessId);
    }

    [Fact]
    public async Task An_idle_instance_sleeps_and_the_next_request_starts_a_fresh_one_that_finds_the_files_in_the_bucket()
    {
        var user = TestContent.UniqueUser("sleepy");
        using var client = app.CreateWorkerClient(user);
        var file = TestContent.RandomBytes(100_000);
        using (var put = await client.PutAsync("/files/kept.bin", new ByteArrayContent(file)))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        var first = app.RunningInstance(user)!;

        // sleepAfter expires: the Durable Object's activity timer sends SIGTERM, the service stops gracefully.
        Assert.Equal(0, await app.WaitForExitAsync(first.Id));
        Assert.False(Directory.Exists(first.DataDirectory), "the instance's disk outlived it");
        await TestContent.WaitUntilAsync(
            () => app.WorkerLog.Any(line => line.Contains($"user {user}: upload container stopped (exit code 0", StringComparison.Ordinal)),
            "the Durable Object's onStop is logged with exit code 0");

        Assert.Equal(file, await client.GetByteArrayAsync("/files/kept.bin"));
        var second = app.RunningInstance(user);
        Assert.NotNull(second);
        Assert.NotEqual(first.Id, second.Id);
        Assert.NotEqual(first.ProcessId, second.ProcessId);
    }

    [Fact]
    public async Task A_killed_instance_is_replaced_on_the_next_request_and_other_users_are_untouched()
    {
        var (victim, bystander) = (TestContent.UniqueUser("crash"), TestContent.UniqueUser("bystander"));
        using var victimClient = app.CreateWorkerClient(victim);
        using var bystanderClient = app.CreateWorkerClient(bystander);
        var file = TestContent.RandomBytes(150_000);
        using (var put = await victimClient.PutAsync("/files/before-the-crash.bin", new ByteArrayContent(file)))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        using (var list = await bystanderClient.GetAsync("/files"))
            Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        var crashed = app.RunningInstance(victim)!;
        var other = app.RunningInstance(bystander)!;

        using (var process = Process.GetProcessById(crashed.ProcessId))
            process.Kill(); // SIGKILL, from outside the runtime
        Assert.Equal(128 + 9, await app.WaitForExitAsync(crashed.Id));

        Assert.Equal(file, await victimClient.GetByteArrayAsync("/files/before-the-crash.bin"));
        var replacement = app.RunningInstance(victim);
        Assert.NotNull(replacement);
        Assert.NotEqual(crashed.ProcessId, replacement.ProcessId);
        Assert.Equal(other.ProcessId, app.RunningInstance(bystander)?.ProcessId);
        await TestContent.WaitUntilAsync(
            () => app.WorkerLog.Any(line => line.Contains($"user {victim}: upload container stopped (exit code 137", StringComparison.Ordinal)),
            "the Durable Object's onStop is logged with the crash's exit code");
    }

    [Fact]
    public async Task Beyond_max_instances_a_user_gets_503_with_Retry_After_until_an_instance_sleeps()
    {
        var users = Enumerable.Range(0, PerUserAppFixture.MaxInstances).Select(i => TestContent.UniqueUser($"max{i}")).ToList();
        foreach (var user in users)
        {
            using var client = app.CreateWorkerClient(user);
            using var list = await client.GetAsync("/files");
            Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        }

        using var late = app.CreateWorkerClient(TestContent.UniqueUser("late"));
        using (var refused = await late.GetAsync("/files"))
        {
            await TestContent.AssertProblemAsync(refused, HttpStatusCode.ServiceUnavailable);
            Assert.NotNull(refused.Headers.RetryAfter?.Delta);
        }

        // Once one of the others has gone to sleep, there is room.
        await TestContent.WaitUntilAsync(async () =>
        {
            using var retry = await late.GetAsync("/files");
            Assert.True(retry.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, $"got {(int)retry.StatusCode}");
            return retry.StatusCode == HttpStatusCode.OK;
        }, "the late user is served");
    }

    [Fact]
    public async Task An_instance_runs_with_the_environment_its_Durable_Object_passes_and_nothing_of_the_AppHost()
    {
        var user = TestContent.UniqueUser("env");
        using var client = app.CreateWorkerClient(user);
        using (var list = await client.GetAsync("/files"))
            Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        var instance = app.RunningInstance(user)!;

        var environment = PerUserAppFixture.EnvironmentOf(instance);
        // Set only in the Durable Object's envVars (worker/src/user-app-container.ts), from the Worker's secrets and vars;
        // URLs to the hosts the object answers point at the Worker's outbound route (worker/src/dev/outbound-route.ts).
        Assert.Equal(app.InternalSecret, environment["INTERNAL_SECRET"]);
        Assert.Equal("s3", environment["Storage__Provider"]);
        Assert.Equal("upload-service", environment["OTEL_SERVICE_NAME"]);
        const string route = @"http://127\.0\.0\.1:\d+/__outbound/";
        Assert.Matches($"^{route}[0-9a-f]{{64}}/[0-9a-f]{{64}}/storage.internal$", environment["Storage__S3__ServiceUrl"]);
        Assert.Matches($"^{route}[0-9a-f]{{64}}/[0-9a-f]{{64}}/otlp.internal$", environment["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        // The runtime's own part: a container's PATH and HOME, the image's ENV, the port mapping, the instance id.
        string[] fromTheRuntime = ["PATH", "HOME", "ASPNETCORE_HTTP_PORTS", "Storage__Root", "ASPNETCORE_URLS", "OTEL_RESOURCE_ATTRIBUTES"];
        string[] fromTheDurableObject =
        [
            "INTERNAL_SECRET", "OTEL_SERVICE_NAME", "Storage__Provider", "Storage__S3__ServiceUrl", "Storage__S3__Bucket",
            "Storage__S3__AccessKeyId", "Storage__S3__SecretAccessKey", "Storage__S3__Region",
            "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
        ];
        Assert.Empty(environment.Keys.Except(fromTheRuntime).Except(fromTheDurableObject));
        Assert.Equal($"service.instance.id={instance.Id}", environment["OTEL_RESOURCE_ATTRIBUTES"]);
    }

    [Fact]
    public async Task An_instance_started_without_the_internal_secret_refuses_to_serve()
    {
        using var runtime = RuntimeClient(app.Runtime.Token);
        var start = new
        {
            durableObjectId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)),
            name = TestContent.UniqueUser("no-secret"),
            env = new Dictionary<string, string> { ["OTEL_SERVICE_NAME"] = "upload-service" },
        };
        using var started = await runtime.PostAsJsonAsync("/instances", start);
        Assert.Equal(HttpStatusCode.Created, started.StatusCode);
        var id = (await started.Content.ReadFromJsonAsync<StartedInstance>())!.Id;

        Assert.NotEqual(0, await app.WaitForExitAsync(id));
    }

    [Fact]
    public async Task The_runtime_answers_only_requests_with_its_key_and_never_runs_a_command_from_one()
    {
        var start = new
        {
            durableObjectId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)),
            name = "intruder",
            env = new Dictionary<string, string>(),
        };
        using (var anonymous = RuntimeClient(token: null))
        using (var refused = await anonymous.PostAsJsonAsync("/instances", start))
            await TestContent.AssertProblemAsync(refused, HttpStatusCode.Unauthorized);
        // Change the last character to one it is not, so the forgery never equals the key by chance.
        var key = app.Runtime.Token;
        using (var forged = RuntimeClient(token: key[..^1] + (key[^1] == '0' ? '1' : '0')))
        using (var refused = await forged.PostAsJsonAsync("/instances", start))
            await TestContent.AssertProblemAsync(refused, HttpStatusCode.Unauthorized);

        using var runtime = RuntimeClient(app.Runtime.Token);
        using (var command = await runtime.PostAsJsonAsync("/instances", new { start.durableObjectId, start.name, start.env, entrypoint = new[] { "/bin/sh", "-c", "id" } }))
            await TestContent.AssertProblemAsync(command, HttpStatusCode.BadRequest);
        Assert.DoesNotContain(app.Runtime.Instances, i => i.User == "intruder");
    }

    [Fact]
    public async Task No_secret_is_on_any_command_line()
    {
        using (var client = app.CreateWorkerClient(TestContent.UniqueUser("cmdline")))
        using (var put = await client.PutAsync("/files/a.txt", new ByteArrayContent([1])))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode); // an instance runs too

        var secrets = new Dictionary<string, string>
        {
            ["AUTH_SECRET"] = app.AuthSecret,
            ["INTERNAL_SECRET"] = app.InternalSecret,
            ["the container runtime's key"] = app.Runtime.Token,
            ["the dashboard's API key"] = app.DashboardApiKey,
        };
        // Every process's command line, read once (a process that exits meanwhile is left out).
        var commandLines = Directory.EnumerateDirectories("/proc")
            .Where(d => int.TryParse(Path.GetFileName(d), out _))
            .Select(d => ReadCommandLine(Path.Combine(d, "cmdline")))
            .OfType<string>()
            .ToList();
        Assert.True(commandLines.Count > 10, $"only {commandLines.Count} processes read");
        Assert.Contains(commandLines, c => c.Contains("wrangler", StringComparison.Ordinal));
        foreach (var commandLine in commandLines)
            foreach (var (what, secret) in secrets)
                Assert.False(commandLine.Contains(secret, StringComparison.Ordinal), $"{what} is on the command line of {commandLine[..Math.Min(120, commandLine.Length)]}");
    }

    private static string? ReadCommandLine(string path)
    {
        try
        {
            return File.ReadAllText(path).Replace('\0', ' ');
        }
        catch (IOException)
        {
            return null;
        }
    }

    [Fact]
    public async Task A_wake_shows_in_the_trace_as_a_start_span_under_the_Durable_Object()
    {
        var traceId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("traced-wake"));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/files");
        request.Headers.Add("traceparent", $"00-{traceId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}-01");
        using (var list = await client.SendAsync(request))
            Assert.Equal(HttpStatusCode.OK, list.StatusCode);

        var spans = await DashboardTraces.WaitForTraceAsync(app, traceId, spans =>
            spans.Any(s => s.Name == "UserAppContainer start") && spans.Any(s => s.Service == "upload-service"));
        var summary = string.Join("; ", spans.Select(s => $"{s.Service}: {s.Name}"));
        var wake = spans.SingleOrDefault(s => s.Name == "UserAppContainer start");
        Assert.True(wake is not null, $"no start span in {summary}");
        var parent = spans.SingleOrDefault(s => s.SpanId == wake.ParentSpanId);
        Assert.True(parent is not null && DashboardTraces.IsDurableObject(parent), $"the start span's parent is not the Durable Object's span: {summary}");
        Assert.Contains(spans, s => s.Service == "upload-service");
    }

    private HttpClient RuntimeClient(string? token)
    {
        var client = new HttpClient { BaseAddress = app.Runtime.Url };
        if (token is not null) client.DefaultRequestHeaders.Authorization = new("Bearer", token);
        return client;
    }

    private sealed record StartedInstance(string Id);
}

/// <summary>
/// <c>--storage filesystem</c>: as on Cloudflare without R2, an instance's files are on its own disk and are
/// gone once it has slept (what docs/storage.md and the AppHost's log warn about).
/// </summary>
[Collection(PerUserFilesystemAppCollection.Name)]
public sealed class EphemeralDiskTests(PerUserFilesystemAppFixture app)
{
    [Fact]
    public async Task An_instance_that_slept_comes_back_without_the_files_on_its_disk()
    {
        var user = TestContent.UniqueUser("ephemeral");
        using var client = app.CreateWorkerClient(user);
        using (var put = await client.PutAsync("/files/lost.bin", new ByteArrayContent(TestContent.RandomBytes(10_000))))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        Assert.Equal(["lost.bin"], (await TestContent.ListAsync(client)).Files.Select(f => f.Name));
        var first = app.RunningInstance(user)!;

        Assert.Equal(0, await app.WaitForExitAsync(first.Id));

        using (var get = await client.GetAsync("/files/lost.bin"))
            await TestContent.AssertProblemAsync(get, HttpStatusCode.NotFound);
        Assert.Empty((await TestContent.ListAsync(client)).Files);
        Assert.NotEqual(first.Id, app.RunningInstance(user)?.Id);
    }
}
