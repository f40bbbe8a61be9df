using Microsoft.Extensions.Options;
using UploadService.Storage;

namespace UploadService.Tus;

/// <summary>
/// Deletes expired uploads (and their bytes) every <see cref="TusOptions.SweepInterval"/>. The first sweep comes one
/// interval after start-up, not at it: a sweep lists every upload, and a woken container answers its first
/// request sooner without that work beside it.
/// </summary>
public sealed partial class TusExpirySweeper(
    ITusStore store, TusLocks locks, TusRunningHashes hashes, IOptions<TusOptions> options, TimeProvider time, ILogger<TusExpirySweeper> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SweepInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                var removed = await store.DeleteExpiredUploadsAsync(time.GetUtcNow(), TryTake, stoppingToken);
                if (removed > 0)
                {
                    LogSwept(removed);
                }
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                // Whatever failed (the disk, the bucket, a state it could not handle), the next sweep tries again:
                // a background service that throws would stop the host.
                LogSweepFailed(ex);
            }
        }
    }

    /// <summary>An expired upload that no request holds is the sweep's to delete: its running hash goes too.</summary>
    private IDisposable? TryTake(string id)
    {
        var held = locks.TryAcquire(id);
        if (held is not null)
        {
            hashes.Drop(id);
        }

        return held;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Deleted {Count} expired uploads")]
    private partial void LogSwept(int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sweeping expired uploads failed")]
    private partial void LogSweepFailed(Exception exception);
}
