using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using UploadService.Tus;

namespace UploadService.Tests;

/// <summary>
/// Kestrel's limits (<c>Kestrel:Limits</c>) on a real Kestrel over real sockets: a client that sends its body
/// too slowly, never finishes its headers or sits idle is disconnected, and a slow tus PATCH loses its
/// upload's lock with its connection; too many or too large headers are 431 and the service stays healthy.
/// The timeouts here are shortened (seconds) so that the tests are quick; the header limits are the shipped ones.
/// </summary>
public sealed class KestrelLimitsTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private readonly UploadServiceFactory _service = UploadServiceFactory.WithSettings(new Dictionary<string, string>
    {
        ["Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond"] = "5000",
        ["Kestrel:Limits:MinRequestBodyDataRate:GracePeriod"] = "00:00:02",
        ["Kestrel:Limits:RequestHeadersTimeout"] = "00:00:02",
        ["Kestrel:Limits:KeepAliveTimeout"] = "00:00:02",
    });

    private Uri Server => _service.Client.BaseAddress!;

    public void Dispose() => _service.Dispose();

    [Fact]
    public void The_shipped_limits_come_from_appsettings()
    {
        using var shipped = new UploadServiceFactory();
        _ = shipped.Client; // starts it
        var limits = shipped.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;

        Assert.Equal(TimeSpan.FromSeconds(30), limits.RequestHeadersTimeout);
        Assert.Equal(TimeSpan.FromSeconds(130), limits.KeepAliveTimeout);
        Assert.Equal(100, limits.MaxRequestHeaderCount);
        Assert.Equal(32 * 1024, limits.MaxRequestHeadersTotalSize);
        Assert.Equal(8 * 1024, limits.MaxRequestLineSize);
        Assert.Equal(240, limits.MinRequestBodyDataRate!.BytesPerSecond);
        Assert.Equal(TimeSpan.FromSeconds(5), limits.MinRequestBodyDataRate.GracePeriod);
        Assert.Equal(UploadServiceFactory.MaxFileBytes + 1024 * 1024, limits.MaxRequestBodySize);
        var configured = _service.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;
        Assert.Equal(5000, configured.MinRequestBodyDataRate!.BytesPerSecond);
        Assert.Equal(TimeSpan.FromSeconds(2), configured.KeepAliveTimeout);
    }

    [Fact]
    public async Task A_slow_drip_patch_is_cut_off_and_its_upload_lock_released()
    {
        const int size = (int)UploadServiceFactory.MaxFileBytes;
        var user = "slow-" + Guid.NewGuid().ToString("N");
        var location = await CreateAsync(user, size);

        // 640 B/s, below the 5,000 B/s minimum: Kestrel ends the request after the grace period.
        var started = new TaskCompletionSource();
        var never = new TaskCompletionSource();
        using var slow = Tus(HttpMethod.Patch, location, user);
        slow.Headers.Add("Upload-Offset", "0");
        slow.Content = new StallingContent(1000, started, never.Task);
        slow.Content.Headers.ContentType = new MediaTypeHeaderValue(TusProtocol.OffsetContentType);
        slow.Content.Headers.ContentLength = size;
        using var client = new HttpClient { BaseAddress = Server }; // its own connection, which the server drops
        var dripping = client.SendAsync(slow);
        await started.Task.WaitAsync(Deadline);

        // The lock is free once a PATCH at a wrong offset is 409 (offset mismatch) instead of 423 (locked).
        var outcome = HttpStatusCode.Locked;
        for (var until = DateTime.UtcNow + Deadline; outcome == HttpStatusCode.Locked && DateTime.UtcNow < until; await Task.Delay(100))
        {
            using var probe = Tus(HttpMethod.Patch, location, user, [1]);
            probe.Headers.Add("Upload-Offset", (size - 1).ToString());
            using var response = await _service.Client.SendAsync(probe);
            outcome = response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.Conflict, outcome);
        var slowOutcome = await Record.ExceptionAsync(async () =>
        {
            using var response = await dripping.WaitAsync(Deadline);
            Assert.Equal(HttpStatusCode.RequestTimeout, response.StatusCode);
        });
        Assert.True(slowOutcome is null or HttpRequestException or IOException, slowOutcome?.ToString());
        never.SetResult();

        // What arrived before the cut is kept (tus); the upload resumes from HEAD's offset and completes.
        using var head = await _service.Client.SendAsync(Tus(HttpMethod.Head, location, user));
        var offset = long.Parse(head.Headers.GetValues("Upload-Offset").Single());
        using var resume = Tus(HttpMethod.Patch, location, user, Names.Bytes((int)(size - offset)));
        resume.Headers.Add("Upload-Offset", offset.ToString());
        using var resumed = await _service.Client.SendAsync(resume);
        Assert.Equal(HttpStatusCode.NoContent, resumed.StatusCode);
    }

    [Fact]
    public async Task A_client_that_never_finishes_its_headers_is_disconnected()
    {
        using var client = await RawHttp.ConnectAsync(Server);
        var stream = client.GetStream();
        await stream.WriteAsync("GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: "u8.ToArray());

        var (closed, received) = await ReadUntilClosedAsync(stream);

        Assert.True(closed, "the connection stayed open past RequestHeadersTimeout");
        var response = RawHttp.Parse(received);
        Assert.True(response is null || response.Status == 408, $"unexpected answer {response?.Status}");
        await AssertHealthyAsync();
    }

    [Fact]
    public async Task An_idle_keep_alive_connection_is_closed()
    {
        using var client = await RawHttp.ConnectAsync(Server);
        var stream = client.GetStream();
        await stream.WriteAsync("GET /health HTTP/1.1\r\nHost: test\r\n\r\n"u8.ToArray());

        var (closed, received) = await ReadUntilClosedAsync(stream);

        Assert.True(closed, "the idle connection stayed open past KeepAliveTimeout");
        Assert.Equal(200, RawHttp.Parse(received)?.Status);
    }

    [Theory]
    [InlineData(101, 10)]       // one more header than MaxRequestHeaderCount
    [InlineData(1, 33 * 1024)]  // one header larger than MaxRequestHeadersTotalSize
    [InlineData(40, 1024)]      // 40 KiB of headers in all
    public async Task Too_many_or_too_large_headers_are_431_and_the_service_stays_healthy(int count, int valueLength)
    {
        var headers = string.Concat(Enumerable.Range(0, count).Select(i => $"X-Header-{i}: {new string('v', valueLength)}\r\n"));

        var response = await RawHttp.SendAsync(Server, $"GET /files HTTP/1.1\r\nHost: test\r\nX-User-Id: alice\r\n{headers}Connection: close");

        Assert.Equal(431, response?.Status);
        await AssertHealthyAsync();
    }

    [Fact]
    public async Task A_request_line_over_the_limit_is_414_and_the_service_stays_healthy()
    {
        var response = await RawHttp.SendAsync(Server, $"GET /files/{new string('a', 9000)} HTTP/1.1\r\nHost: test\r\nX-User-Id: alice\r\nConnection: close");

        Assert.Equal(414, response?.Status);
        await AssertHealthyAsync();
    }

    private async Task AssertHealthyAsync()
    {
        using var health = await _service.Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    /// <summary>Reads until the server closes the connection (true) or the deadline passes (false).</summary>
    private static async Task<(bool Closed, byte[] Received)> ReadUntilClosedAsync(Stream stream)
    {
        using var deadline = new CancellationTokenSource(Deadline);
        var received = new MemoryStream();
        var buffer = new byte[4096];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, deadline.Token)) > 0)
            {
                received.Write(buffer, 0, read);
            }

            return (true, received.ToArray());
        }
        catch (IOException)
        {
            return (true, received.ToArray()); // reset by the server
        }
        catch (OperationCanceledException)
        {
            return (false, received.ToArray());
        }
    }

    private static HttpRequestMessage Tus(HttpMethod method, Uri location, string user, byte[]? body = null)
    {
        var request = new HttpRequestMessage(method, location.AbsolutePath);
        request.Headers.Add("X-User-Id", user);
        request.Headers.Add("Tus-Resumable", "1.0.0");
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue(TusProtocol.OffsetContentType);
        }

        return request;
    }

    private async Task<Uri> CreateAsync(string user, long length)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/uploads");
        request.Headers.Add("X-User-Id", user);
        request.Headers.Add("Tus-Resumable", "1.0.0");
        request.Headers.Add("Upload-Length", length.ToString());
        request.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "slow.bin")]));
        using var response = await _service.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return response.Headers.Location!;
    }
}
