namespace UploadService.Hosting;

/// <summary>
/// How much memory the GC may use, logged once at start: what the instance's memory leaves the service (a
/// container's limit), or the heap limit set with <c>DOTNET_GCHeapHardLimit</c>. The tests that stream gigabytes
/// under a 128 MiB limit read this line to know that the limit is in effect.
/// </summary>
public static partial class MemoryLimit
{
    public static void LogMemoryLimit(this WebApplication app) =>
        Log(app.Logger, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes >> 20);

    [LoggerMessage(Level = LogLevel.Information, Message = "Memory available to the GC: {MiB} MiB")]
    private static partial void Log(ILogger logger, long miB);
}
