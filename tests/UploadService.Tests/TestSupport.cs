using System.Security.Cryptography;
using UploadService.Security;

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
