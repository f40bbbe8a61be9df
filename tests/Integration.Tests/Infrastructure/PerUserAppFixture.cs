using System.Collections.Concurrent;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;

namespace Integration.Tests;

/// <summary>
/// The AppHost's default mode: each user's Durable Object gets its own upload-service instance from the local
/// container runtime (<c>user-containers</c>), files in R2 (wrangler dev's emulation) behind each user's Durable
/// Object. Instances sleep
/// after <see cref="SleepAfter"/> and at most <see cref="MaxInstances"/> run at once, so the lifecycle can be
/// watched within a test.
/// </summary>
public class PerUserAppFixture : AppFixture
{
    public static readonly TimeSpan SleepAfter = TimeSpan.FromSeconds(6);
    public const int MaxInstances = 2;

    private readonly ConcurrentQueue<string> _workerLog = new();
    private CancellationTokenSource? _watching;

    protected override IEnumerable<string> ModeArguments =>
    [
        "--UploadService:Mode=project",
        $"--Containers:MaxInstances={MaxInstances}",
        $"--Containers:SleepAfter={SleepAfter.TotalSeconds:0}s",
    ];

    protected override string UploadServiceResource => "user-containers";

    public LocalContainerRuntime Runtime => App.Services.GetRequiredService<LocalContainerRuntime>();

    /// <summary>What the Worker (wrangler dev, the Durable Objects' console.log) has printed so far.</summary>
    public IReadOnlyCollection<string> WorkerLog => _workerLog;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        _watching = new CancellationTokenSource();
        var loggers = App.Services.GetRequiredService<ResourceLoggerService>();
        // Logs are kept by the id of the running process's resource (e.g. worker-abcd1234), not by its name.
        var worker = await App.ResourceNotifications.WaitForResourceAsync("worker", e => e.Snapshot.State?.Text == KnownResourceStates.Running);
        _ = Task.Run(async () =>
        {
            try
            {
                await foreach (var batch in loggers.WatchAsync(worker.ResourceId).WithCancellation(_watching.Token))
                    foreach (var line in batch) _workerLog.Enqueue(line.Content);
            }
            catch (OperationCanceledException)
            {
            }
        });
    }

    public override async Task DisposeAsync()
    {
        _watching?.Cancel();
        await base.DisposeAsync();
    }

    /// <summary>The user's instance that is running now, if any.</summary>
    public UploadServiceInstanceInfo? RunningInstance(string user) =>
        Runtime.Instances.SingleOrDefault(i => i.User == user && i.ExitCode is null);

    /// <summary>The environment the instance's process runs with, as /proc shows it.</summary>
    public static Dictionary<string, string> EnvironmentOf(UploadServiceInstanceInfo instance) =>
        File.ReadAllText($"/proc/{instance.ProcessId}/environ")
            .Split('\0', StringSplitOptions.RemoveEmptyEntries)
            .Select(entry => entry.Split('=', 2))
            .ToDictionary(pair => pair[0], pair => pair[1]);

    /// <summary>Waits until every instance has gone to sleep, so that a test starts with all of max_instances free.</summary>
    public Task WaitUntilNoInstanceRunsAsync() =>
        TestContent.WaitUntilAsync(() => Runtime.Instances.All(i => i.ExitCode is not null), "no instance runs");

    /// <summary>Waits until the instance has exited, and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(string instanceId)
    {
        await TestContent.WaitUntilAsync(() => Runtime.Instances.Single(i => i.Id == instanceId).ExitCode is not null, $"{instanceId} exits");
        return Runtime.Instances.Single(i => i.Id == instanceId).ExitCode!.Value;
    }
}

/// <summary>Per-user instances keeping their files on their own disks (<c>--storage filesystem</c>), gone when they sleep.</summary>
public sealed class PerUserFilesystemAppFixture : PerUserAppFixture
{
    protected override IEnumerable<string> ExtraArguments => ["--storage=filesystem"];
}

// Alone, after the other collections: the lifecycle tests wait on timers (sleepAfter) that a machine busy with
// another AppHost would stretch.
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PerUserAppCollection : ICollectionFixture<PerUserAppFixture>
{
    public const string Name = "app-per-user";
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PerUserFilesystemAppCollection : ICollectionFixture<PerUserFilesystemAppFixture>
{
    public const string Name = "app-per-user-filesystem";
}
