namespace UploadService.Storage;

/// <summary>
/// Recognises "the storage has no room" among I/O failures: ENOSPC (and EDQUOT, a filesystem quota) on
/// Linux, ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL on Windows. .NET reports the raw errno as the
/// <see cref="Exception.HResult"/> of the IOException on Unix and an HRESULT wrapping the Win32 code on Windows.
/// </summary>
public static class StorageFull
{
    private const int Enospc = 28;
    private const int Edquot = 122;
    private const int ErrorHandleDiskFull = 39;
    private const int ErrorDiskFull = 112;

    public static bool Is(Exception exception) =>
        exception is IOException { HResult: var code } and not (FileNotFoundException or DirectoryNotFoundException)
        && (OperatingSystem.IsWindows()
            ? (code & 0xFFFF) is ErrorHandleDiskFull or ErrorDiskFull
            : code is Enospc or Edquot);
}
