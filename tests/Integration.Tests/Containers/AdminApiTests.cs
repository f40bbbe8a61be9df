using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Integration.Tests;

/// <summary>
/// The Worker's admin API (/admin/containers) on the real AppHost: users' containers listed from the directory
/// Durable Object, stopped (SIGTERM) and destroyed (SIGKILL) through their own Durable Objects, whose local
/// containers are real processes of the upload service; and the dashboard's commands that use the same API.
/// </summary>
[Collection(PerUserAppCollection.Name)]
public sealed class AdminApiTests(PerUserAppFixture app, ITestOutputHelper output) : IAsyncLifetime
{
    public Task InitializeAsync() => app.WaitUntilNoInstanceRunsAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Stop_and_destroy_reach_only_that_users_container_and_its_next_request_starts_it_again()
    {
        var (alice, bob) = (TestContent.UniqueUser("admin-alice"), TestContent.UniqueUser("admin-bob"));
        using var aliceClient = app.CreateWorkerClient(alice);
        using var bobClient = app.CreateWorkerClient(bob);
        using var admin = app.CreateAdminClient();
        await UploadAsync(aliceClient);
        await UploadAsync(bobClient);
        var aliceFirst = app.RunningInstance(alice)!;
        var bobInstance = app.RunningInstance(bob)!;

        // Both are listed as running (their Durable Objects report in the background), and listing (or showing
        // one) wakes nobody.
        await WaitForAsync(admin, alice, c => c.Status == "healthy");
        await WaitForAsync(admin, bob, c => c.Status == "healthy");
        var running = RunningCount();
        var listed = await ListAllAsync(admin);
        Assert.Equal("healthy", listed.Single(c => c.User == alice).Status);
        Assert.Equal("healthy", listed.Single(c => c.User == bob).Status);
        Assert.Equal("healthy", (await ShowAsync(admin, alice)).Status);
        Assert.Equal(running, RunningCount());

        // Stop alice: 202, then her process exits (SIGTERM: code 0) and the directory says stopped; bob is untouched.
        using (var stop = await admin.PostAsync($"/admin/containers/{alice}/stop", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, stop.StatusCode);
            Assert.Equal("stopping", (await stop.Content.ReadFromJsonAsync<ContainerView>())!.Status);
        }
        Assert.Equal(0, await app.WaitForExitAsync(aliceFirst.Id));
        Assert.False(IsAlive(aliceFirst.ProcessId), $"{aliceFirst.Id}'s process is gone");
        Assert.Equal(bobInstance.Id, app.RunningInstance(bob)?.Id);
        var stopped = await WaitForAsync(admin, alice, c => c.Status == "stopped" && c.LastStop is not null);
        Assert.Equal(0, stopped.ExitCode);
        output.WriteLine($"after the stop: {stopped}");

        // Listing while she is stopped wakes nobody either; stopping her again is a no-op that says so.
        running = RunningCount();
        Assert.Equal("stopped", (await ListAllAsync(admin)).Single(c => c.User == alice).Status);
        using (var again = await admin.PostAsync($"/admin/containers/{alice}/stop", null))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            Assert.Contains("nothing to stop", (await again.Content.ReadFromJsonAsync<ContainerView>())!.Detail);
        }
        Assert.Equal(running, RunningCount());
        Assert.Null(app.RunningInstance(alice));

        // Her next upload starts a new instance, and the list says so.
        await UploadAsync(aliceClient);
        var aliceSecond = app.RunningInstance(alice)!;
        Assert.NotEqual(aliceFirst.Id, aliceSecond.Id);
        var restarted = await WaitForAsync(admin, alice, c => c.Status == "healthy");
        Assert.True(restarted.LastStart > stopped.LastStart, $"lastStart {restarted.LastStart:O} is after {stopped.LastStart:O}");

        // Destroy: SIGKILL, and the exit code reaches the state.
        using (var destroy = await admin.DeleteAsync($"/admin/containers/{alice}"))
            Assert.Equal(HttpStatusCode.Accepted, destroy.StatusCode);
        Assert.Equal(137, await app.WaitForExitAsync(aliceSecond.Id));
        var destroyed = await WaitForAsync(admin, alice, c => c.Status == "stopped" && c.LastStop > restarted.LastStart);
        Assert.Equal(137, destroyed.ExitCode);
        Assert.Equal(bobInstance.Id, app.RunningInstance(bob)?.Id);
    }

    [Fact]
    public async Task Only_admins_may_call_it_and_unknown_users_are_404()
    {
        using (var anonymous = app.CreateWorkerClient())
        using (var response = await anonymous.GetAsync("/admin/containers"))
            await TestContent.AssertProblemAsync(response, HttpStatusCode.Unauthorized);
        using (var user = app.CreateWorkerClient(TestContent.UniqueUser("not-admin")))
        using (var response = await user.GetAsync("/admin/containers"))
            await TestContent.AssertProblemAsync(response, HttpStatusCode.Forbidden);
        using var admin = app.CreateAdminClient();
        using (var response = await admin.GetAsync($"/admin/containers/{TestContent.UniqueUser("never-seen")}"))
            await TestContent.AssertProblemAsync(response, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task The_dashboard_commands_stop_and_destroy_through_the_admin_API()
    {
        var user = TestContent.UniqueUser("dashboard-stop");
        using var client = app.CreateWorkerClient(user);
        using var admin = app.CreateAdminClient();
        var commands = app.App.Services.GetRequiredService<ResourceCommandService>();

        await UploadAsync(client);
        var first = app.RunningInstance(user)!;
        await WaitForCommandAsync(first.Id, AdminApiCommands.StopCommand);
        var stop = await commands.ExecuteCommandAsync(first.Id, AdminApiCommands.StopCommand);
        Assert.True(stop.Success, stop.Message);
        Assert.Equal(0, await app.WaitForExitAsync(first.Id));
        Assert.Equal(0, (await WaitForAsync(admin, user, c => c.Status == "stopped" && c.LastStop is not null)).ExitCode);

        await UploadAsync(client);
        var second = app.RunningInstance(user)!;
        await WaitForCommandAsync(second.Id, AdminApiCommands.DestroyCommand);
        var destroy = await commands.ExecuteCommandAsync(second.Id, AdminApiCommands.DestroyCommand);
        Assert.True(destroy.Success, destroy.Message);
        Assert.Equal(137, await app.WaitForExitAsync(second.Id));
    }

    [Fact]
    public async Task An_admin_request_is_one_trace_through_the_Worker_the_Durable_Object_and_the_directory()
    {
        var user = TestContent.UniqueUser("admin-traced");
        using (var client = app.CreateWorkerClient(user))
            await UploadAsync(client);
        using var admin = app.CreateAdminClient();
        await WaitForAsync(admin, user, c => c.Status == "healthy");
        var traceId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/admin/containers/{user}");
        request.Headers.Add("traceparent", $"00-{traceId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}-01");
        using (var response = await admin.SendAsync(request))
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var spans = await DashboardTraces.WaitForTraceAsync(app, traceId, spans =>
            spans.Any(s => s.Name == "ContainerDirectory get") && spans.Any(s => s.Name.StartsWith("Durable Object Fetch", StringComparison.Ordinal)));
        var summary = string.Join("; ", spans.Select(s => $"{s.Service}: {s.Name}"));
        Assert.True(spans.Any(s => s.Name == "ContainerDirectory get"), $"no directory span in {summary}");
        var durableObject = spans.FirstOrDefault(s => s.Name.StartsWith("Durable Object Fetch", StringComparison.Ordinal));
        Assert.True(durableObject is not null, $"no Durable Object span in {summary}");
        Assert.Contains(spans, s => s.SpanId == durableObject.ParentSpanId);
    }

    private static async Task UploadAsync(HttpClient client)
    {
        using var put = await client.PutAsync($"/files/{Guid.NewGuid():N}.bin", new ByteArrayContent(TestContent.RandomBytes(10_000)));
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
    }

    private int RunningCount() => app.Runtime.Instances.Count(i => i.ExitCode is null);

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static async Task<List<ContainerView>> ListAllAsync(HttpClient admin)
    {
        var all = new List<ContainerView>();
        string? cursor = null;
        do
        {
            var page = await admin.GetFromJsonAsync<ContainerPage>($"/admin/containers?limit=50{(cursor is null ? "" : $"&cursor={cursor}")}");
            all.AddRange(page!.Containers);
            cursor = page.Cursor;
        } while (cursor is not null);
        return all;
    }

    private static async Task<ContainerView> ShowAsync(HttpClient admin, string user) =>
        (await admin.GetFromJsonAsync<ContainerView>($"/admin/containers/{user}"))!;

    /// <summary>Polls the user's entry (404 until their Durable Object's first report arrives) until <paramref name="done"/>.</summary>
    private static async Task<ContainerView> WaitForAsync(HttpClient admin, string user, Func<ContainerView, bool> done)
    {
        ContainerView? last = null;
        await TestContent.WaitUntilAsync(async () =>
        {
            using var response = await admin.GetAsync($"/admin/containers/{user}");
            if (response.StatusCode == HttpStatusCode.NotFound) return false;
            response.EnsureSuccessStatusCode();
            last = await response.Content.ReadFromJsonAsync<ContainerView>();
            return done(last!);
        }, $"{user}'s container state");
        return last!;
    }

    /// <summary>The dashboard enables the commands once the instance is running (its /health answered).</summary>
    private Task WaitForCommandAsync(string instanceId, string command) =>
        TestContent.WaitUntilAsync(
            () => app.App.ResourceNotifications.TryGetCurrentState(instanceId, out var e)
                && e.Snapshot.Commands.Any(c => c.Name == command && c.State == ResourceCommandState.Enabled),
            $"{command} enabled on {instanceId}");

    private sealed record ContainerPage(List<ContainerView> Containers, string? Cursor);

    private sealed record ContainerView(string User, string Status, int? ExitCode, DateTime LastChange, DateTime? LastStart, DateTime? LastStop, string? Detail);
}
