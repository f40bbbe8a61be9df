using Microsoft.AspNetCore.Diagnostics;
using UploadService.Storage;
using AmazonServiceException = Amazon.Runtime.AmazonServiceException;

namespace UploadService.Apis;

/// <summary>
/// Storage failures are never a bare 500; the stores have already removed what the failed write staged, so
/// nothing partial is visible, and a tus client resumes from HEAD's offset. The exception is logged here for
/// the operator: since .NET 10 the exception-handler middleware records nothing for an exception a handler
/// has handled.
/// <list type="bullet">
/// <item>A full disk (or filesystem quota), wherever it strikes (the bytes, a record, a tus state): 507
/// Insufficient Storage. Reads keep working: they need no space.</item>
/// <item>The storage service (S3 / R2) failing or unreachable, which is not the client's fault and may pass:
/// 503 Service Unavailable with Retry-After.</item>
/// </list>
/// </summary>
public sealed partial class StorageFailureHandler(IProblemDetailsService problems, ILogger<StorageFailureHandler> logger) : IExceptionHandler
{
    private const int RetryAfterSeconds = 5;

    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        (int Status, string Title, string Detail) problem;
        if (StorageFull.Is(exception))
        {
            problem = (StatusCodes.Status507InsufficientStorage, "Insufficient Storage",
                "The service's storage is full; nothing was stored. Files already stored can still be read.");
        }
        // Outgoing HTTP in this service is the storage client's only: an HttpRequestException is the store's too.
        else if (exception is AmazonServiceException or HttpRequestException)
        {
            problem = (StatusCodes.Status503ServiceUnavailable, "Service Unavailable",
                "The storage service could not be reached or failed; nothing was stored by this request. Try again shortly.");
            context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        else
        {
            return false;
        }

        LogStorageFailure(exception, context.Request.Method, context.Request.Path.ToString(), problem.Status);
        context.Response.StatusCode = problem.Status;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = { Status = problem.Status, Title = problem.Title, Detail = problem.Detail },
        });
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Storage failed during {Method} {Path}; answered {Status}")]
    private partial void LogStorageFailure(Exception exception, string method, string path, int status);
}
