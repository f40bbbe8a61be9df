using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Bench;

/// <summary>Where a case sends its requests, and how it identifies the user there.</summary>
public sealed record Target(string Name, Uri BaseUrl, Action<HttpRequestMessage> Authorize);

/// <summary>The one client every path is driven with: the same requests, buffers and chunk size for all.</summary>
public sealed class Client(HttpClient http)
{
    public const long TusChunk = 50L * 1024 * 1024;

    public static HttpClient CreateHttp() => new(new SocketsHttpHandler
    {
        UseProxy = false,                       // loopback only, whatever the environment says
        MaxConnectionsPerServer = 64,
        AutomaticDecompression = DecompressionMethods.None,
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
    })
    {
        Timeout = TimeSpan.FromMinutes(10),
    };

    public async Task Put(Target target, string name, long size)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri(target.BaseUrl, $"files/{name}"))
        {
            Content = new PayloadContent(0, size),
        };
        target.Authorize(request);
        await Send(request);
    }

    /// <summary>A tus upload: creation, then PATCHes of at most <see cref="TusChunk"/> bytes.</summary>
    public async Task Tus(Target target, string name, long size, long chunk = TusChunk)
    {
        var create = new Uri(target.BaseUrl, "uploads");
        using var post = new HttpRequestMessage(HttpMethod.Post, create);
        post.Headers.Add("Tus-Resumable", "1.0.0");
        post.Headers.Add("Upload-Length", size.ToString());
        post.Headers.Add("Upload-Metadata",
            $"filename {B64(name)},filetype {B64("application/octet-stream")}");
        target.Authorize(post);
        using var created = await Send(post);
        var location = created.Headers.Location ?? throw new InvalidOperationException($"{target.Name}: no Location");
        var upload = new Uri(create, location);

        for (long offset = 0; offset < size;)
        {
            var length = Math.Min(chunk, size - offset);
            using var patch = new HttpRequestMessage(HttpMethod.Patch, upload) { Content = new PayloadContent(offset, length) };
            patch.Headers.Add("Tus-Resumable", "1.0.0");
            patch.Headers.Add("Upload-Offset", offset.ToString());
            patch.Content.Headers.ContentType = new MediaTypeHeaderValue("application/offset+octet-stream");
            target.Authorize(patch);
            using var patched = await Send(patch);
            offset += length;
        }
    }

    public async Task<long> Get(Target target, string name, RangeHeaderValue? range = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(target.BaseUrl, $"files/{name}"));
        request.Headers.Range = range;
        target.Authorize(request);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await EnsureSuccess(response, request);
        await using var body = await response.Content.ReadAsStreamAsync();
        return await Discard.Drain(body);
    }

    async Task<HttpResponseMessage> Send(HttpRequestMessage request)
    {
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseContentRead);
        await EnsureSuccess(response, request);
        return response;
    }

    static async Task EnsureSuccess(HttpResponseMessage response, HttpRequestMessage request)
    {
        if (response.IsSuccessStatusCode) return;
        var body = await response.Content.ReadAsStringAsync();
        throw new HttpRequestException(
            $"{request.Method} {request.RequestUri} → {(int)response.StatusCode}: {body[..Math.Min(body.Length, 300)]}");
    }

    static string B64(string value) => Convert.ToBase64String(Encoding.UTF8.GetBytes(value));
}
