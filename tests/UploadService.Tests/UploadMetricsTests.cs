using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using UploadService.Telemetry;
using UploadService.Tus;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

/// <summary>The service's upload metrics, as a MeterListener (what OpenTelemetry and dotnet-counters use) sees them after real uploads.</summary>
public sealed class UploadMetricsTests(UploadServiceFactory service) : IClassFixture<UploadServiceFactory>, IDisposable
{
    private readonly string _user = "user-" + Guid.NewGuid().ToString("N");
    private readonly Recorder _recorder = new(service.Services.GetRequiredService<IMeterFactory>());

    public void Dispose() => _recorder.Dispose();

    [Fact]
    public async Task A_put_counts_its_bytes_duration_and_throughput_and_is_in_flight_while_it_runs()
    {
        var bytes = Bytes(50_000);
        using var request = new HttpRequestMessage(HttpMethod.Put, "/files/measured.bin") { Content = new ByteArrayContent(bytes) };
        request.Headers.Add("X-User-Id", _user);

        using var response = await service.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var received = Assert.Single(_recorder.Of(UploadMetrics.BytesReceived));
        Assert.Equal(50_000, received.Value);
        Assert.Equal("put", received.Tags[UploadMetrics.KindTag]);
        Assert.Equal("success", received.Tags[UploadMetrics.OutcomeTag]);
        Assert.Equal([1.0, -1.0], _recorder.Of(UploadMetrics.InFlight).Select(m => m.Value));
        var duration = Assert.Single(_recorder.Of(UploadMetrics.Duration)).Value;
        Assert.InRange(duration, 1e-6, 60);
        var throughput = Assert.Single(_recorder.Of(UploadMetrics.Throughput)).Value;
        Assert.Equal(50_000 / duration, throughput, 6);
    }

    [Fact]
    public async Task Tus_creation_with_upload_and_patch_are_each_measured_as_tus()
    {
        using var create = new HttpRequestMessage(HttpMethod.Post, "/uploads") { Content = new ByteArrayContent(Bytes(3000)) };
        create.Content.Headers.ContentType = new MediaTypeHeaderValue(TusProtocol.OffsetContentType);
        create.Headers.Add("X-User-Id", _user);
        create.Headers.Add("Tus-Resumable", TusProtocol.Version);
        create.Headers.Add("Upload-Length", "10000");
        create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "measured-tus.bin")]));
        using var created = await service.Client.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        using var patch = new HttpRequestMessage(HttpMethod.Patch, created.Headers.Location) { Content = new ByteArrayContent(Bytes(7000)) };
        patch.Content.Headers.ContentType = new MediaTypeHeaderValue(TusProtocol.OffsetContentType);
        patch.Headers.Add("X-User-Id", _user);
        patch.Headers.Add("Tus-Resumable", TusProtocol.Version);
        patch.Headers.Add("Upload-Offset", "3000");
        using var patched = await service.Client.SendAsync(patch);
        Assert.Equal(HttpStatusCode.NoContent, patched.StatusCode);

        var received = _recorder.Of(UploadMetrics.BytesReceived);
        Assert.Equal([3000.0, 7000.0], received.Select(m => m.Value));
        Assert.All(received, m => Assert.Equal("tus", m.Tags[UploadMetrics.KindTag]));
        Assert.Equal(2, _recorder.Of(UploadMetrics.Duration).Count);
        Assert.Equal(0, _recorder.Of(UploadMetrics.InFlight).Sum(m => m.Value));
    }

    [Fact]
    public async Task A_rejected_upload_is_measured_with_its_outcome()
    {
        var bytes = Bytes((int)UploadServiceFactory.MaxFileBytes + 1000);
        // Sent without Content-Length (chunked), so the limit is found while reading, not from the header.
        using var request = new HttpRequestMessage(HttpMethod.Put, "/files/too-big.bin") { Content = new StreamContent(new MemoryStream(bytes)) };
        request.Headers.TransferEncodingChunked = true;
        request.Headers.Add("X-User-Id", _user);

        using var response = await service.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        var received = Assert.Single(_recorder.Of(UploadMetrics.BytesReceived));
        Assert.Equal("rejected", received.Tags[UploadMetrics.OutcomeTag]);
        Assert.InRange(received.Value, UploadServiceFactory.MaxFileBytes, bytes.Length);
        Assert.Equal(0, _recorder.Of(UploadMetrics.InFlight).Sum(m => m.Value));
    }

    private sealed record Recorded(string Instrument, double Value, IReadOnlyDictionary<string, object?> Tags);

    /// <summary>Every measurement of the UploadService meter of one host (its own IMeterFactory: other tests' servers are not seen).</summary>
    private sealed class Recorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentQueue<Recorded> _recorded = new();

        public Recorder(IMeterFactory scope)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == UploadMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, scope))
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
            _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument, value, tags));
            _listener.Start();
        }

        public IReadOnlyList<Recorded> Of(string instrument) => [.. _recorded.Where(r => r.Instrument == instrument)];

        private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags) =>
            _recorded.Enqueue(new Recorded(instrument.Name, value, new Dictionary<string, object?>(tags.ToArray())));

        public void Dispose() => _listener.Dispose();
    }
}
