using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using OpenTelemetry.Metrics;

namespace UploadService.Telemetry;

/// <summary>
/// The upload service's own metrics (meter <see cref="MeterName"/>), exported with the rest of its
/// OpenTelemetry metrics (the Aspire dashboard shows them) and read by the benchmark. One measurement per
/// request that carries an upload body (PUT /files, POST /files multipart, tus creation-with-upload and
/// PATCH), tagged with <see cref="KindTag"/> and, once it ends, <see cref="OutcomeTag"/>.
/// </summary>
public sealed class UploadMetrics
{
    public const string MeterName = "UploadService";
    public const string BytesReceived = "upload.bytes_received";
    public const string InFlight = "upload.in_flight";
    public const string Duration = "upload.duration";
    public const string Throughput = "upload.throughput";
    public const string KindTag = "upload.kind";
    public const string OutcomeTag = "upload.outcome";

    private readonly Counter<long> _bytes;
    private readonly UpDownCounter<long> _inFlight;
    private readonly Histogram<double> _duration;
    private readonly Histogram<double> _throughput;

    public UploadMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _bytes = meter.CreateCounter<long>(BytesReceived, "By", "Bytes of upload bodies the service read.");
        _inFlight = meter.CreateUpDownCounter<long>(InFlight, "{upload}", "Upload requests whose body is being received.");
        _duration = meter.CreateHistogram(Duration, "s", "Time from the start of an upload request to its answer.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300] });
        _throughput = meter.CreateHistogram(Throughput, "By/s", "Body bytes per second of one upload request.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1 << 20, 10 << 20, 50 << 20, 100 << 20, 250 << 20, 500 << 20, 1000 << 20, 2000L << 20, 4000L << 20] });
    }

    /// <summary>Counts the request in flight until the returned measurement is disposed.</summary>
    public Measurement Start(string kind)
    {
        _inFlight.Add(1, new KeyValuePair<string, object?>(KindTag, kind));
        return new Measurement(this, kind, Stopwatch.GetTimestamp());
    }

    public sealed class Measurement(UploadMetrics owner, string kind, long started) : IDisposable
    {
        private int _done;

        /// <summary>Body bytes read so far.</summary>
        public long Bytes { get; private set; }

        public void AddBytes(long count) => Bytes += count;

        /// <summary>How the request ended: <c>success</c>, <c>rejected</c> (4xx), <c>aborted</c> (client went away) or <c>error</c>.</summary>
        public string Outcome { get; set; } = "error";

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) != 0)
            {
                return;
            }

            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var kindTag = new KeyValuePair<string, object?>(KindTag, kind);
            var tags = new TagList { kindTag, { OutcomeTag, Outcome } };
            owner._inFlight.Add(-1, kindTag);
            owner._bytes.Add(Bytes, tags);
            owner._duration.Record(seconds, tags);
            if (Bytes > 0 && seconds > 0)
            {
                owner._throughput.Record(Bytes / seconds, tags);
            }
        }
    }
}

public static class UploadMetricsExtensions
{
    /// <summary>Registers <see cref="UploadMetrics"/> and adds its meter to the service's OpenTelemetry metrics.</summary>
    public static TBuilder AddUploadMetrics<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddSingleton<UploadMetrics>();
        // Exported with the rest where ServiceDefaults builds the OpenTelemetry pipeline (an OTLP endpoint is set);
        // this alone builds none.
        builder.Services.ConfigureOpenTelemetryMeterProvider(metrics => metrics.AddMeter(UploadMetrics.MeterName));
        return builder;
    }

    /// <summary>
    /// Measures the endpoint's requests that carry a body as uploads of <paramref name="kind"/>: counts the
    /// body bytes as they are read and records duration, throughput and outcome when the endpoint returns.
    /// </summary>
    public static TBuilder MeasuredAsUpload<TBuilder>(this TBuilder builder, string kind) where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            var request = http.Request;
            if (request.ContentLength == 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count == 0))
            {
                return await next(context);
            }

            using var measurement = http.RequestServices.GetRequiredService<UploadMetrics>().Start(kind);
            var body = request.Body;
            request.Body = new CountingStream(body, measurement);
            try
            {
                var result = await next(context);
                var inner = result;
                while (inner is INestedHttpResult nested)
                {
                    inner = nested.Result;
                }

                var status = inner is IStatusCodeHttpResult { StatusCode: { } code } ? code : http.Response.StatusCode;
                measurement.Outcome = status switch { < 400 => "success", < 500 => "rejected", _ => "error" };
                return result;
            }
            catch (Exception) when (http.RequestAborted.IsCancellationRequested)
            {
                measurement.Outcome = "aborted";
                throw;
            }
            finally
            {
                request.Body = body;
            }
        });

    /// <summary>A read-only pass-through that adds the bytes read to a measurement.</summary>
    private sealed class CountingStream(Stream inner, UploadMetrics.Measurement measurement) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

        public override int Read(Span<byte> buffer) => Count(inner.Read(buffer));

        public override async Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Count(await inner.ReadAsync(buffer.AsMemory(offset, count), cancellationToken));

        // Pooled: a large body takes hundreds of thousands of reads, which should not each leave garbage.
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Count(await inner.ReadAsync(buffer, cancellationToken));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private int Count(int read)
        {
            measurement.AddBytes(read);
            return read;
        }
    }
}
