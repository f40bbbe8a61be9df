using System.Runtime.InteropServices;
using UploadService.Storage;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

/// <summary>
/// The copy into a real file on this machine's disk: a body of at least one buffer is written past the page
/// cache (O_DIRECT, seen in the kernel's view of the open file while the copy runs, and off again after it),
/// anything else through it; the file holds exactly the bytes, the hash is theirs, and the stream's position
/// is their end either way, also from an unaligned start (a tus append resuming after a broken chunk). Skipped
/// where the temp directory's file system refuses O_DIRECT.
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
        SkipUnlessDirectWrites();
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

    [SkippableFact]
    public async Task A_source_that_breaks_after_direct_writes_leaves_the_file_positioned_after_every_byte_read()
    {
        SkipUnlessDirectWrites();
        var bytes = Bytes(2 * HashingCopy.BufferSize + 777);
        await using var file = new FileStream(Path.Combine(_directory, "broken.bin"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
        var directWhileCopying = false;
        var source = new WatchedStream(bytes, at: bytes.Length, () =>
        {
            directWhileCopying = IsDirect(file);
            throw new IOException("connection reset");
        });

        var error = await Assert.ThrowsAsync<UploadContentException>(() =>
            HashingCopy.CopyAsync(source, file, long.MaxValue, CancellationToken.None));

        Assert.IsType<IOException>(error.InnerException);
        Assert.True(directWhileCopying);
        Assert.Equal(bytes.Length, file.Position);
        Assert.Equal(bytes.Length, file.Length);
        Assert.False(IsDirect(file));
        file.Position = 0;
        var stored = new byte[bytes.Length];
        await file.ReadExactlyAsync(stored);
        Assert.Equal(bytes, stored);
    }

    [SkippableFact]
    public async Task A_direct_write_the_file_system_refuses_is_made_through_the_page_cache()
    {
        SkipUnlessDirectWrites();
        await using var file = new FileStream(Path.Combine(_directory, "refused.bin"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
        var direct = DirectWrites.Start(file)!;
        Assert.True(IsDirect(file));
        var bytes = Bytes(100); // not a whole block: the kernel refuses it as a direct write (EINVAL)

        await direct.WriteAsync(bytes, 0);

        Assert.False(IsDirect(file));
        var stored = new byte[101];
        Assert.Equal(100, await RandomAccess.ReadAsync(file.SafeFileHandle, stored, 0));
        Assert.Equal(bytes, stored[..100]);
    }

    /// <summary>Whether this machine's temp directory takes direct writes (a file system may refuse O_DIRECT).</summary>
    private void SkipUnlessDirectWrites()
    {
        Skip.IfNot(OperatingSystem.IsLinux() && DirectFlag != 0, "O_DIRECT is used on Linux x64 and arm64 only");
        using var probe = new FileStream(Path.Combine(_directory, "probe"), FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        var direct = DirectWrites.Start(probe);
        Skip.If(direct is null, $"the file system of {_directory} refuses O_DIRECT");
        direct!.Stop();
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
