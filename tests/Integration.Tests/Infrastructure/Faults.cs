using System.Globalization;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;

namespace Integration.Tests;

/// <summary>
/// Faults injected into the running AppHost: the upload service crashed (SIGKILL, then Aspire's start
/// command on the same storage root) and the Worker restarted (Aspire's stop and start commands on
/// `wrangler dev`, checking that no workerd outlives the stop).
/// </summary>
public static class Faults
{
    public static readonly TimeSpan RestartTimeout = TimeSpan.FromMinutes(2);

    /// <summary>
    /// A crash, not a graceful stop: SIGKILL the service's process tree (a graceful stop would wait for a
    /// stalled request), then start the Aspire resource again on the same storage root.
    /// </summary>
    public static async Task KillAndStartUploadServiceAsync(this AppFixture app)
    {
        using var timeout = new CancellationTokenSource(RestartTimeout);
        var notifications = app.App.ResourceNotifications;
        var running = await notifications.WaitForResourceAsync(
            "upload-service", e => e.Snapshot.State?.Text == KnownResourceStates.Running, timeout.Token);
        using (var process = System.Diagnostics.Process.GetProcessById(Pid(running)))
        {
            process.Kill(entireProcessTree: true);
        }

        await notifications.WaitForResourceAsync("upload-service", KnownResourceStates.TerminalStates, timeout.Token);
        await StartAsync(app, "upload-service", timeout.Token);
    }

    /// <summary>
    /// Stops `wrangler dev` with Aspire's stop command (what a developer's Stop button does) and waits, with a
    /// deadline, until every workerd process it ran has gone: a surviving workerd would hold its ports.
    /// </summary>
    public static async Task StopWorkerAsync(this AppFixture app)
    {
        using var timeout = new CancellationTokenSource(RestartTimeout);
        var workerd = await WorkerdProcessesAsync(app);
        var stop = await app.App.ResourceCommands.ExecuteCommandAsync("worker", KnownResourceCommands.StopCommand, timeout.Token);
        Assert.True(stop.Success, stop.Message);
        await app.App.ResourceNotifications.WaitForResourceAsync("worker", KnownResourceStates.TerminalStates, timeout.Token);
        await AssertGoneAsync(workerd, "the worker's stop");
    }

    /// <summary>The workerd processes the running Worker resource (npm → wrangler → workerd) has started.</summary>
    public static async Task<IReadOnlyList<int>> WorkerdProcessesAsync(this AppFixture app)
    {
        using var timeout = new CancellationTokenSource(RestartTimeout);
        var running = await app.App.ResourceNotifications.WaitForResourceAsync(
            "worker", e => e.Snapshot.State?.Text == KnownResourceStates.Running, timeout.Token);
        var workerd = LiveDescendants(Pid(running)).Where(pid => ProcessName(pid) == "workerd").ToList();
        Assert.NotEmpty(workerd);
        return workerd;
    }

    /// <summary>Waits, with a deadline, until none of <paramref name="workerd"/> is alive: a survivor would hold its ports.</summary>
    public static async Task AssertGoneAsync(IReadOnlyList<int> workerd, string after)
    {
        var deadline = DateTime.UtcNow + RestartTimeout;
        while (workerd.Any(IsAlive))
        {
            Assert.True(DateTime.UtcNow < deadline, $"workerd outlived {after}: {string.Join(", ", workerd.Where(IsAlive))}");
            await Task.Delay(100);
        }
    }

    /// <summary>Starts the stopped Worker again and waits until its /health answers.</summary>
    public static async Task StartWorkerAsync(this AppFixture app)
    {
        using var timeout = new CancellationTokenSource(RestartTimeout);
        await StartAsync(app, "worker", timeout.Token);
    }

    private static async Task StartAsync(AppFixture app, string resource, CancellationToken cancellationToken)
    {
        var start = await app.App.ResourceCommands.ExecuteCommandAsync(resource, KnownResourceCommands.StartCommand, cancellationToken);
        Assert.True(start.Success, start.Message);
        await app.App.ResourceNotifications.WaitForResourceHealthyAsync(resource, cancellationToken);
    }

    private static int Pid(ResourceEvent running) => Convert.ToInt32(
        running.Snapshot.Properties.Single(property => property.Name == "executable.pid").Value, CultureInfo.InvariantCulture);

    // /proc/{pid}/stat: "pid (comm) state ppid ...", where comm may itself hold spaces or parentheses.
    private static (char State, int Parent)? Stat(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (fields[0][0], int.Parse(fields[1], CultureInfo.InvariantCulture));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Running, not a zombie awaiting its parent's wait (which holds no port), as .ci/run counts them.</summary>
    private static bool IsAlive(int pid) => Stat(pid) is { State: not 'Z' };

    private static string? ProcessName(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim(); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return null; }
    }

    private static List<int> LiveDescendants(int root)
    {
        var parents = new Dictionary<int, int>();
        foreach (var entry in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                && Stat(pid) is { State: not 'Z' } stat)
            {
                parents[pid] = stat.Parent;
            }
        }

        var found = new List<int>();
        var frontier = new Queue<int>([root]);
        while (frontier.TryDequeue(out var parent))
        {
            foreach (var (pid, _) in parents.Where(p => p.Value == parent))
            {
                found.Add(pid);
                frontier.Enqueue(pid);
            }
        }

        return found;
    }
}
