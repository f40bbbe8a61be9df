using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace UploadService.Storage;

/// <summary>
/// Hands each freshly written stretch of a file to the disk without waiting for it (Linux
/// <c>sync_file_range(SYNC_FILE_RANGE_WRITE)</c>), so that the disk works while the rest of an upload
/// arrives and the fsync that makes the upload durable finds little left to write, instead of writing
/// every byte after the last one came in. A hint only: durability still comes from that fsync. Elsewhere
/// than on Linux, or where the call fails, it does nothing.
/// </summary>
internal sealed class Writeback
{
    /// <summary>How much is written before it is handed on: large enough to make few calls, small enough to start early.</summary>
    public const long Stretch = 8 * 1024 * 1024;

    private const uint SyncFileRangeWrite = 2;

    private static bool s_unavailable = !OperatingSystem.IsLinux();

    private readonly SafeFileHandle _file;
    private long _handedOn;
    private long _written;

    private Writeback(SafeFileHandle file, long position)
    {
        _file = file;
        _handedOn = position;
        _written = position;
    }

    /// <summary>For a file written sequentially from its current position; null where there is nothing to gain.</summary>
    public static Writeback? For(Stream destination) =>
        !s_unavailable && destination is FileStream { CanSeek: true } file ? new Writeback(file.SafeFileHandle, file.Position) : null;

    /// <summary>Records <paramref name="count"/> more bytes written; hands them on once a stretch has gathered.</summary>
    public void Written(long count)
    {
        _written += count;
        if (_written - _handedOn < Stretch || s_unavailable)
        {
            return;
        }

        try
        {
            if (sync_file_range(_file, _handedOn, _written - _handedOn, SyncFileRangeWrite) != 0
                && Marshal.GetLastPInvokeError() is Enosys or Einval)
            {
                s_unavailable = true; // not supported here: stop trying
            }
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            s_unavailable = true;
        }

        _handedOn = _written;
    }

    private const int Einval = 22;
    private const int Enosys = 38;

    [DllImport("libc", SetLastError = true)]
    private static extern int sync_file_range(SafeFileHandle fd, long offset, long nbytes, uint flags);
}
