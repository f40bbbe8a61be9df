using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;

namespace Integration.Tests;

/// <summary>tus requests by hand, through the Worker.</summary>
public static class Tus
{
    public const string OffsetContentType = "application/offset+octet-stream";

    public static HttpRequestMessage Request(HttpMethod method, string url, HttpContent? body = null)
    {
        var request = new HttpRequestMessage(method, url) { Content = body };
        request.Headers.Add("Tus-Resumable", "1.0.0");
        if (body is not null)
        {
            body.Headers.ContentType = new MediaTypeHeaderValue(OffsetContentType);
        }

        return request;
    }

    public static string Metadata(string filename, string? filetype = null) =>
        $"filename {Convert.ToBase64String(Encoding.UTF8.GetBytes(filename))}"
        + (filetype is null ? "" : $",filetype {Convert.ToBase64String(Encoding.UTF8.GetBytes(filetype))}");

    public static async Task<Uri> CreateAsync(HttpClient client, long length, string filename, string? filetype = null)
    {
        using var request = Request(HttpMethod.Post, "/uploads");
        request.Headers.Add("Upload-Length", length.ToString());
        request.Headers.Add("Upload-Metadata", Metadata(filename, filetype));
        using var response = await client.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"create: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        Assert.Equal("1.0.0", Header(response, "Tus-Resumable"));
        return response.Headers.Location!;
    }

    public static async Task<HttpResponseMessage> PatchAsync(HttpClient client, Uri location, long offset, HttpContent chunk, string? checksum = null)
    {
        using var request = Request(HttpMethod.Patch, location.PathAndQuery, chunk);
        request.Headers.Add("Upload-Offset", offset.ToString());
        if (checksum is not null)
        {
            request.Headers.Add("Upload-Checksum", checksum);
        }

        return await client.SendAsync(request);
    }

    public static async Task<long> OffsetAsync(HttpClient client, Uri location)
    {
        using var head = await client.SendAsync(Request(HttpMethod.Head, location.PathAndQuery));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        return long.Parse(Header(head, "Upload-Offset")!);
    }

    public static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? string.Join(",", values)
            : null;
}

/// <summary>
/// Deterministic content addressable by offset (each 1 MiB block from its own seed), so any range of a
/// multi-gigabyte upload can be re-sent after an interruption without keeping the file anywhere.
/// </summary>
public sealed class SeededBytes(long length, int seed)
{
    public const int BlockSize = 1 << 20;

    public long Length => length;

    public void Fill(long offset, Span<byte> destination)
    {
        byte[]? scratch = null;
        while (destination.Length > 0)
        {
            var index = offset / BlockSize;
            var within = (int)(offset % BlockSize);
            var count = Math.Min(destination.Length, BlockSize - within);
            if (within == 0 && count == BlockSize)
            {
                FillBlock(index, destination[..BlockSize]);
            }
            else
            {
                scratch ??= new byte[BlockSize];
                FillBlock(index, scratch);
                scratch.AsSpan(within, count).CopyTo(destination);
            }

            destination = destination[count..];
            offset += count;
        }
    }

    /// <summary>
    /// Block <paramref name="index"/>: a SplitMix64 stream started from the seed and the index, several times
    /// faster than a seeded <see cref="Random"/>, so that generating the load's gigabytes costs the test little.
    /// </summary>
    private void FillBlock(long index, Span<byte> block)
    {
        var state = ((ulong)(uint)seed << 32 | (uint)index) * 0xD1B54A32D192ED03UL;
        var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(block);
        for (var i = 0; i < words.Length; i++)
        {
            var z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            words[i] = z ^ (z >> 31);
        }
    }

    public string Sha256Hex()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[BlockSize];
        for (long offset = 0; offset < length; offset += BlockSize)
        {
            var count = (int)Math.Min(BlockSize, length - offset);
            Fill(offset, buffer.AsSpan(0, count));
            hash.AppendData(buffer, 0, count);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>
    /// Bytes [offset, offset + count) as a streaming body; optionally stalls after <paramref name="stallAfter"/>
    /// bytes until <paramref name="resume"/>, then gives up (the client breaks its connection) or, with
    /// <paramref name="sendRestAfterStall"/>, goes on sending (a fault elsewhere must then break the request).
    /// </summary>
    public HttpContent Range(long offset, long count, long? stallAfter = null, TaskCompletionSource? stalled = null, Task? resume = null,
        bool sendRestAfterStall = false) =>
        new RangeContent(this, offset, count, stallAfter, stalled, resume, sendRestAfterStall);

    private sealed class RangeContent(SeededBytes bytes, long offset, long count, long? stallAfter, TaskCompletionSource? stalled, Task? resume,
        bool sendRestAfterStall) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            var buffer = new byte[BlockSize];
            var hasStalled = false;
            for (long sent = 0; sent < count;)
            {
                if (stallAfter == sent && !hasStalled)
                {
                    await stream.FlushAsync(cancellationToken);
                    stalled?.TrySetResult();
                    await resume!.WaitAsync(cancellationToken);
                    hasStalled = true;
                    if (!sendRestAfterStall)
                    {
                        throw new IOException("the client gave up mid-chunk on purpose");
                    }
                }

                var untilStall = stallAfter is { } stall && stall > sent ? stall - sent : long.MaxValue;
                var n = (int)Math.Min(Math.Min(buffer.Length, count - sent), untilStall);
                bytes.Fill(offset + sent, buffer.AsSpan(0, n));
                await stream.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
                sent += n;
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = count;
            return true;
        }
    }
}

/// <summary>Runs tus-client/upload.mjs (the official tus-js-client) with Node.</summary>
public static class TusJsClient
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(3);

    public static Task<NodeClients.Result> RunAsync(string token, params string[] args) =>
        NodeClients.RunAsync("upload.mjs", new Dictionary<string, string> { ["TUS_TOKEN"] = token }, RunTimeout, args);
}
