using System.Runtime.InteropServices;
using UploadService.Storage;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

/// <summary>
/// The copy into a real file on this machine's disk: a body of at least one buffer is written past the page
/// cache (O_DIRECT, seen in the kernel's view of the open file while the copy runs, and off again after it),
/// anything else through it; the file holds exactly the bytes, the hash is theirs, and the stream's position
/// is their end either way, also from an unaligned start (a tus append resuming after a broken chunk).
/// </summary>
public sealed class HashingCopyTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("hashing-copy-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [SkippableTheory]
    [InlineData(3 * HashingCopy.BufferSize + 12_345, 0, true)] // whole buffers direct, then a tail of odd length
    [InlineData(2 * HashingCopy.BufferSize, 0, true)]
    [InlineData(HashingCopy.BufferSize - 1, 0, false)] // less than a buffer: through the page cache
    [InlineData(3 * HashingCopy.BufferSize, 1000, false)] // an unaligned start: through the page cache
    public async Task A_copy_into_a_file_writes_exactly_the_bytes_directly_when_large_and_aligned(int length, int start, bool direct)
    {
        Skip.IfNot(OperatingSystem.IsLinux() && DirectFlag != 0, "O_DIRECT is used on Linux x64 and arm64 only");
        var bytes = Bytes(length, seed: length);
        var prefix = Bytes(start, seed: 9);
        await using var file = new FileStream(Path.Combine(_directory, "f.bin"), new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.None,
            BufferSize = 0,
        });
        await file.WriteAsync(prefix);
        var directWhileCopying = false;
        var source = new WatchedStream(bytes, at: HashingCopy.BufferSize + 1, () => directWhileCopying = IsDirect(file));

        var (copied, sha256) = await HashingCopy.CopyAsync(source, file, long.MaxValue, CancellationToken.None);

        Assert.Equal(direct, directWhileCopying);
        Assert.False(IsDirect(file));
        Assert.Equal(length, copied);
        Assert.Equal(Sha256(bytes), sha256);
        Assert.Equal(start + length, file.Position);
        file.Position = 0;
        var stored = new byte[start + length + 1];
        Assert.Equal(start + length, await file.ReadAtLeastAsync(stored, stored.Length, throwOnEndOfStream: false));
        Assert.Equal([.. prefix, .. bytes], stored[..^1]);
    }

    [Fact]
    public async Task A_source_that_breaks_after_direct_writes_leaves_the_file_positioned_after_every_byte_read()
    {
        var bytes = Bytes(2 * HashingCopy.BufferSize + 777);
        await using var file = new FileStream(Path.Combine(_directory, "broken.bin"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
        var source = new WatchedStream(bytes, at: bytes.Length, () => throw new IOException("connection reset"));

        var error = await Assert.ThrowsAsync<UploadContentException>(() =>
            HashingCopy.CopyAsync(source, file, long.MaxValue, CancellationToken.None));

        Assert.IsType<IOException>(error.InnerException);
        Assert.Equal(bytes.Length, file.Position);
        Assert.Equal(bytes.Length, file.Length);
        Assert.False(IsDirect(file));
        file.Position = 0;
        var stored = new byte[bytes.Length];
        await file.ReadExactlyAsync(stored);
        Assert.Equal(bytes, stored);
    }

    private static int DirectFlag => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 0x4000,
        Architecture.Arm64 => 0x10000,
        _ => 0,
    };

    /// <summary>The open file's flags as the kernel has them (octal, in /proc/self/fdinfo).</summary>
    private static bool IsDirect(FileStream file)
    {
        var fd = file.SafeFileHandle.DangerousGetHandle();
        var flags = System.IO.File.ReadLines($"/proc/self/fdinfo/{fd}").First(line => line.StartsWith("flags:", StringComparison.Ordinal));
        return (Convert.ToInt32(flags["flags:".Length..].Trim(), 8) & DirectFlag) != 0;
    }

    /// <summary>Serves <c>bytes</c> in reads of at most 64 KiB, calling <c>onReach</c> once the reads have gone past <c>at</c> bytes (or reach the end).</summary>
    private sealed class WatchedStream(byte[] bytes, int at, Action onReach) : MemoryStream(bytes, writable: false)
    {
        private bool _reached;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (!_reached && Position >= Math.Min(at, Length))
            {
                _reached = true;
                onReach();
            }

            return await base.ReadAsync(buffer[..Math.Min(buffer.Length, 64 * 1024)], cancellationToken);
        }
    }
}
