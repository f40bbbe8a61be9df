using System.Net;
using System.Security.Cryptography;
using UploadService.Domain;
using UploadService.Security;
using UploadService.Storage;
using UploadService.Tus;

namespace UploadService.Tests;

/// <summary>A fresh directory under the system temp folder, removed on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(
        System.IO.Path.GetTempPath(), "upload-service-tests", Guid.NewGuid().ToString("N"));

    public IEnumerable<string> AllFiles() => Directory.EnumerateFiles(Path, "*", SearchOption.AllDirectories);

    public void Dispose()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }
}

public static class Names
{
    public static UserId User(string value) =>
        UserId.TryParse(value, out var user, out var error) ? user : throw new ArgumentException(error);

    public static FileName File(string value) =>
        FileName.TryParse(value, out var name, out var error) ? name : throw new ArgumentException(error);

    public static byte[] Bytes(int length, int seed = 1)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>How the filesystem store names a user's folder or a file's record and blobs: SHA-256 of the UTF-8 text, hex.</summary>
    public static string StoreKey(string value) => Sha256(System.Text.Encoding.UTF8.GetBytes(value));
}

public static class StoreTesting
{
    /// <summary>What the service's start-up does to its store (<see cref="FileStore.Open"/>); a new instance over the same storage is a restart.</summary>
    public static T Opened<T>(this T store) where T : FileStore
    {
        store.Open();
        return store;
    }
}

/// <summary>The header values a tus client sends (the service only parses them).</summary>
public static class TusClientHeaders
{
    /// <summary>Upload-Metadata: "key base64(value)" pairs, comma-separated.</summary>
    public static string Metadata(IEnumerable<KeyValuePair<string, string>> metadata) =>
        string.Join(',', metadata.Select(pair => $"{pair.Key} {Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(pair.Value))}"));

    /// <summary>Upload-Checksum: "algorithm base64(digest)".</summary>
    public static string Checksum(string algorithm, byte[] digest) => $"{algorithm} {Convert.ToBase64String(digest)}";
}

/// <summary>Tus uploads at the store's level, as the endpoints drive them.</summary>
public static class TusUploads
{
    public static TusUploadInfo NewInfo(long? length, string fileName, DateTimeOffset now, string contentType = "application/octet-stream") =>
        new(UploadId.New().Value, length, 0, null, false, null, now, now.AddHours(1), fileName, contentType);

    /// <summary>What a PATCH does to a loaded upload: <paramref name="body"/> at its offset (committing it when that completes it).</summary>
    public static async Task AppendAsync(
        this TusUpload upload, Stream body, TusRunningHashes hashes, ChunkChecksum? checksum = null, DateTimeOffset? expiresAt = null)
    {
        using var chunk = new TusChunk(body, upload.Info, long.MaxValue, checksum, hashes);
        await upload.AppendAsync(chunk, upload.Info with { ExpiresAt = expiresAt ?? upload.Info.ExpiresAt }, CancellationToken.None);
    }
}

/// <summary>
/// Produces <c>length</c> bytes, then runs <c>onExhausted</c> on the next read (to throw, or to cancel
/// the caller's token) instead of ending. Reads are small so that several happen before that point.
/// </summary>
public sealed class ScriptedStream(int length, Action onExhausted) : Stream
{
    private const int ChunkSize = 1000;
    private int _position;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        if (_position >= length)
        {
            onExhausted();
            cancellationToken.ThrowIfCancellationRequested();
            throw new InvalidOperationException("onExhausted must throw or cancel the token");
        }

        var count = Math.Min(Math.Min(buffer.Length, ChunkSize), length - _position);
        buffer.Span[..count].Fill(0x5A);
        _position += count;
        return count;
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>
/// HTTP/1.1 over a plain socket, for what HttpClient will not send: a Content-Length that lies, headers with
/// no end, a body that stops. Sends <c>Connection: close</c> semantics by reading the answer to the end.
/// </summary>
public static class RawHttp
{
    public sealed record Response(int Status, IReadOnlyDictionary<string, string> Headers, string Body)
    {
        public string? ContentType => Headers.TryGetValue("content-type", out var value) ? value : null;
    }

    /// <summary>Connects to <paramref name="server"/>'s host and port.</summary>
    public static async Task<System.Net.Sockets.TcpClient> ConnectAsync(Uri server)
    {
        var client = new System.Net.Sockets.TcpClient { NoDelay = true };
        await client.ConnectAsync(server.Host, server.Port);
        return client;
    }

    /// <summary>
    /// Sends <paramref name="head"/> (request line and headers, without the blank line, which is added) and
    /// <paramref name="body"/>, then reads the response until the server closes the connection or
    /// <paramref name="timeout"/> passes (then what arrived is parsed; null when nothing did).
    /// </summary>
    public static async Task<Response?> SendAsync(Uri server, string head, byte[]? body = null, TimeSpan? timeout = null)
    {
        using var client = await ConnectAsync(server);
        var stream = client.GetStream();
        await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(Signed(head.TrimEnd('\r', '\n') + "\r\n\r\n")));
        if (body is not null)
        {
            try
            {
                await stream.WriteAsync(body);
            }
            catch (IOException)
            {
                // the server answered and closed before taking the whole body
            }
        }

        return Parse(await ReadToEndAsync(stream, timeout ?? TimeSpan.FromSeconds(20)));
    }

    /// <summary>
    /// <paramref name="head"/> with the Durable Object's signature headers added after the request line
    /// (signed with <see cref="UploadServiceFactory.InternalSecret"/> over the method, target, override and
    /// user id it carries), so that hostile input reaches the endpoints instead of stopping at the signature
    /// check. A head without a parseable request line, or that already has a signature, is returned as is.
    /// </summary>
    public static string Signed(string head)
    {
        var lines = head.Split("\r\n");
        var requestLine = lines[0].Split(' ');
        if (requestLine.Length != 3 || head.Contains(InternalSignature.SignatureHeader + ":", StringComparison.OrdinalIgnoreCase))
        {
            return head;
        }

        string? Header(string name) => lines.Skip(1)
            .Where(line => line.StartsWith(name + ":", StringComparison.OrdinalIgnoreCase))
            .Select(line => line[(name.Length + 1)..].Trim())
            .FirstOrDefault();

        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var signature = InternalSignature.Compute(
            System.Text.Encoding.UTF8.GetBytes(UploadServiceFactory.InternalSecret), timestamp, requestLine[0],
            Header("X-HTTP-Method-Override"), requestLine[1], Header(UserId.HeaderName) ?? "");
        return $"{lines[0]}\r\n{InternalSignature.TimestampHeader}: {timestamp}\r\n{InternalSignature.SignatureHeader}: {signature}\r\n"
               + string.Join("\r\n", lines.Skip(1));
    }

    /// <summary>Reads until the peer closes or the deadline passes; a reset counts as closed.</summary>
    public static async Task<byte[]> ReadToEndAsync(Stream stream, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        var received = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, deadline.Token)) > 0)
            {
                received.Write(buffer, 0, read);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
        }

        return received.ToArray();
    }

    public static Response? Parse(byte[] raw)
    {
        var text = System.Text.Encoding.UTF8.GetString(raw);
        var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (end < 0)
        {
            return null;
        }

        var lines = text[..end].Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            headers[line[..colon].Trim().ToLowerInvariant()] = line[(colon + 1)..].Trim();
        }

        var body = text[(end + 4)..];
        if (headers.TryGetValue("transfer-encoding", out var encoding) && encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            var decoded = new System.Text.StringBuilder();
            var position = 0;
            while (position < body.Length)
            {
                var lineEnd = body.IndexOf("\r\n", position, StringComparison.Ordinal);
                if (lineEnd < 0)
                {
                    break;
                }

                var size = Convert.ToInt32(body[position..lineEnd].Split(';')[0], 16);
                if (size == 0)
                {
                    break;
                }

                decoded.Append(body, lineEnd + 2, Math.Min(size, body.Length - lineEnd - 2));
                position = lineEnd + 2 + size + 2;
            }

            body = decoded.ToString();
        }

        return new Response(status, headers, body);
    }
}

/// <summary>
/// Sends <paramref name="first"/> bytes, then trickles 64 bytes every 100 ms until released: slow, but above
/// Kestrel's minimum request body data rate (240 B/s), so the server keeps the request (and its lock) open.
/// </summary>
public sealed class StallingContent(int first, TaskCompletionSource started, Task release) : HttpContent
{
    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        await SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        await stream.WriteAsync(Names.Bytes(first), cancellationToken);
        await stream.FlushAsync(cancellationToken);
        started.TrySetResult();
        var trickle = Names.Bytes(64);
        while (!release.IsCompleted)
        {
            await Task.WhenAny(release, Task.Delay(100, cancellationToken));
            cancellationToken.ThrowIfCancellationRequested();
            await stream.WriteAsync(trickle, cancellationToken);
            await stream.FlushAsync(cancellationToken);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
