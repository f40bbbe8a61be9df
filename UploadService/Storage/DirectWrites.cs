using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace UploadService.Storage;

/// <summary>
/// Switches an open file to writes that go from the caller's buffers straight to the disk (Linux <c>O_DIRECT</c>,
/// set with <c>fcntl</c>) instead of being copied into page-cache pages first, and back. For large uploads: that
/// copy, and getting fresh page-cache pages for it, is a large share of an upload's CPU (a VM that hands freed
/// memory back to its host makes every fresh page a fault there), the service does not read the bytes again
/// soon, and page cache counts against a container's memory limit. Durability still comes from the fsync that
/// commits a file. While it is on, every write's buffer address, length and file offset must be multiples of
/// <see cref="Alignment"/>. <see cref="Start"/> returns null where the file system refuses the flag, and
/// elsewhere than Linux on x64 and arm64; a file system that takes the flag but then refuses the writes gets
/// them through the page cache instead (<see cref="WriteAsync"/>).
/// </summary>
internal sealed class DirectWrites
{
    /// <summary>Of buffer addresses, lengths and file offsets: a page, a multiple of every logical block size in use.</summary>
    public const int Alignment = 4096;

    private const int GetFlags = 3; // F_GETFL
    private const int SetFlags = 4; // F_SETFL
    private const int Einval = 22;

    /// <summary>O_DIRECT differs between architectures; 0 where it is not used.</summary>
    private static readonly int s_directFlag = !OperatingSystem.IsLinux() ? 0 : RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 0x4000,
        Architecture.Arm64 => 0x10000,
        _ => 0,
    };

    private static bool s_unavailable = s_directFlag == 0;

    private readonly SafeFileHandle _file;
    private readonly int _flags;

    private DirectWrites(SafeFileHandle file, int flags)
    {
        _file = file;
        _flags = flags;
    }

    /// <summary>Turns direct writes on for <paramref name="file"/>, positioned at a multiple of <see cref="Alignment"/>; null where they can't be.</summary>
    public static DirectWrites? Start(FileStream file)
    {
        if (s_unavailable || !file.CanSeek || file.Position % Alignment != 0)
        {
            return null;
        }

        try
        {
            var handle = file.SafeFileHandle; // once: the getter also seeks
            var flags = fcntl(handle, GetFlags, 0);
            return flags >= 0 && fcntl(handle, SetFlags, flags | s_directFlag) == 0
                ? new DirectWrites(handle, flags)
                : null; // e.g. a file system without O_DIRECT
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unavailable = true;
            return null;
        }
    }

    /// <summary>
    /// Writes <paramref name="bytes"/> at <paramref name="offset"/> (directly while direct writes are on). If the
    /// file system refuses a direct write (EINVAL), direct writes stop for this file and the bytes are written
    /// again through the page cache; other writes in flight at the time do the same.
    /// </summary>
    public async Task WriteAsync(ReadOnlyMemory<byte> bytes, long offset)
    {
        try
        {
            await RandomAccess.WriteAsync(_file, bytes, offset);
        }
        catch (IOException ex) when (ex.HResult == Einval)
        {
            Stop();
            await RandomAccess.WriteAsync(_file, bytes, offset);
        }
    }

    /// <summary>Back to writes through the page cache (the file's flags as they were).</summary>
    public void Stop()
    {
        if (!_file.IsClosed)
        {
            fcntl(_file, SetFlags, _flags);
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int fcntl(SafeFileHandle fd, int command, int argument);
}
