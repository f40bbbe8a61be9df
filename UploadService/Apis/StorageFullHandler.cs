using Microsoft.AspNetCore.Diagnostics;
using UploadService.Storage;

namespace UploadService.Apis;

/// <summary>
/// A full disk (or filesystem quota) on any write path becomes 507 Insufficient Storage as problem details,
/// wherever it strikes (the bytes, a record, a tus state). The stores have already removed what the failed
/// write staged, so nothing partial is visible, and reads keep working: they need no space.
/// </summary>
public sealed class StorageFullHandler(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        if (!StorageFull.Is(exception))
        {
            return false;
        }

        context.Response.StatusCode = StatusCodes.Status507InsufficientStorage;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails =
            {
                Status = StatusCodes.Status507InsufficientStorage,
                Title = "Insufficient Storage",
                Detail = "The service's storage is full; nothing was stored. Files already stored can still be read.",
            },
        });
    }
}
