using System.Diagnostics.Tracing;
using System.Globalization;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;

namespace Bench;

/// <summary>
/// The upload service's own metrics (meter "UploadService"), read from the running service over EventPipe
/// the way dotnet-counters reads them: the same instruments the Aspire dashboard shows. Totals accumulate
/// from the per-interval deltas the runtime publishes; <see cref="Snapshot"/> waits for the interval that
/// covers everything done before the call.
/// </summary>
public sealed class ServiceMetrics : IAsyncDisposable
{
    const string Meter = "UploadService";
    const double RefreshSeconds = 0.25;
    static readonly TimeSpan SnapshotTimeout = TimeSpan.FromSeconds(10);

    readonly EventPipeSession session;
    readonly EventPipeEventSource source;
    readonly Task processing;
    readonly Lock gate = new();
    Totals totals = new(0, 0, 0, 0, 0);
    /// <summary>When each collection interval ended (as the service stamped its end event) and the totals then; the last minute's.</summary>
    readonly Queue<(DateTime End, Totals AtEnd)> intervals = new();
    string? error;

    /// <summary>Sums since the session started: body bytes, upload requests, their summed duration (s), and the sum and count of per-request throughputs (bytes/s).</summary>
    public sealed record Totals(double Bytes, long Uploads, double Seconds, double ThroughputSum, long ThroughputCount)
    {
        public static Totals operator -(Totals a, Totals b) =>
            new(a.Bytes - b.Bytes, a.Uploads - b.Uploads, a.Seconds - b.Seconds, a.ThroughputSum - b.ThroughputSum, a.ThroughputCount - b.ThroughputCount);

        /// <summary>What the service itself measured, for a table's note, against the bytes the client sent.</summary>
        public string Describe(long bytesSent)
        {
            const double MiB = 1 << 20;
            var match = Math.Abs(Bytes - bytesSent) < 0.5 ? "= sent" : $"≠ {bytesSent} sent";
            var time = Uploads > 0 ? $", mean {Seconds / Uploads * 1000:0.0} ms each" : "";
            var rate = Seconds > 0 ? $", {Bytes / MiB / Seconds:0} MiB/s over their time" : "";
            var mean = ThroughputCount > 0 ? $" (per-request mean {ThroughputSum / ThroughputCount / MiB:0} MiB/s)" : "";
            return $"service metrics: {Bytes:0} bytes received ({match}) in {Uploads} upload requests{time}{rate}{mean}";
        }
    }

    ServiceMetrics(EventPipeSession session)
    {
        this.session = session;
        source = new EventPipeEventSource(session.EventStream);
        source.Dynamic.All += OnEvent;
        processing = Task.Run(source.Process);
    }

    public static ServiceMetrics Start(int pid)
    {
        var arguments = new Dictionary<string, string>
        {
            ["SessionId"] = Guid.NewGuid().ToString("N"),
            ["Metrics"] = Meter,
            ["RefreshInterval"] = RefreshSeconds.ToString(CultureInfo.InvariantCulture),
            ["MaxTimeSeries"] = "1000",
            ["MaxHistograms"] = "100",
        };
        var provider = new EventPipeProvider("System.Diagnostics.Metrics", EventLevel.Informational, keywords: 0x3, arguments);
        var session = new DiagnosticsClient(pid).StartEventPipeSession([provider], requestRundown: false);
        return new ServiceMetrics(session);
    }

    /// <summary>
    /// The totals at the end of the first collection interval that ends after this call: everything the
    /// service recorded before the call, nothing recorded after that interval.
    /// </summary>
    public async Task<Totals> Snapshot()
    {
        var now = DateTime.UtcNow;
        var deadline = now + SnapshotTimeout;
        while (true)
        {
            lock (gate)
            {
                if (error is not null) throw new InvalidOperationException($"service metrics: {error}");
                foreach (var (end, atEnd) in intervals)
                    if (end >= now) return atEnd;
            }
            if (DateTime.UtcNow > deadline || processing.IsCompleted)
                throw new TimeoutException("service metrics: no collection interval from the upload service's EventPipe session"
                    + (processing.Exception is { } failed ? $" ({failed.GetBaseException().Message})" : ""));
            await Task.Delay(TimeSpan.FromSeconds(RefreshSeconds / 2));
        }
    }

    void OnEvent(TraceEvent e)
    {
        lock (gate)
        {
            switch (e.EventName)
            {
                case "Collection/Stop" or "CollectionStop":   // TraceEvent names it after its task and opcode
                    intervals.Enqueue((e.TimeStamp.ToUniversalTime(), totals));
                    if (intervals.Count > 60 / RefreshSeconds) intervals.Dequeue();
                    break;
                case "Error" or "MultipleSessionsNotSupportedError":
                    error = string.Join(' ', e.PayloadNames.Select(n => $"{n}={e.PayloadByName(n)}"));
                    break;
                case "CounterRateValuePublished" when Is(e, "upload.bytes_received"):
                    totals = totals with { Bytes = totals.Bytes + Number(e.PayloadByName("rate")) };
                    break;
                case "HistogramValuePublished" when Is(e, "upload.duration"):
                    totals = totals with { Uploads = totals.Uploads + Convert.ToInt64(e.PayloadByName("count"), CultureInfo.InvariantCulture), Seconds = totals.Seconds + Convert.ToDouble(e.PayloadByName("sum"), CultureInfo.InvariantCulture) };
                    break;
                case "HistogramValuePublished" when Is(e, "upload.throughput"):
                    totals = totals with { ThroughputCount = totals.ThroughputCount + Convert.ToInt64(e.PayloadByName("count"), CultureInfo.InvariantCulture), ThroughputSum = totals.ThroughputSum + Convert.ToDouble(e.PayloadByName("sum"), CultureInfo.InvariantCulture) };
                    break;
            }
        }
    }

    static bool Is(TraceEvent e, string instrument) =>
        e.PayloadByName("meterName") as string == Meter && e.PayloadByName("instrumentName") as string == instrument;

    static double Number(object? value) =>
        double.TryParse(value as string, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) ? number : 0;

    public async ValueTask DisposeAsync()
    {
        try
        {
            await session.StopAsync(CancellationToken.None);
        }
        catch (Exception e) when (e is ServerNotAvailableException or EndOfStreamException or IOException)
        {
            // The service is gone already: nothing left to stop.
        }
        await processing.ContinueWith(_ => { }, TaskScheduler.Default);
        source.Dispose();
        session.Dispose();
    }
}
