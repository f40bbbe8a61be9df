using AmazonServiceException = Amazon.Runtime.AmazonServiceException;
using Microsoft.AspNetCore.Diagnostics;

namespace UploadService.Apis;

/// <summary>
/// The storage service (S3 / R2) failing or unreachable is not the client's fault and may pass: 503 Service
/// Unavailable as problem details with Retry-After, never a bare 500. The stores have already removed what
/// the failed request staged; a tus client resumes from HEAD's offset. The exception is logged (by the
/// exception-handler middleware) for the operator.
/// </summary>
public sealed class StorageUnavailableHandler(IProblemDetailsService problems) : IExceptionHandler
{
    private const int RetryAfterSeconds = 5;

    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        // Outgoing HTTP in this service is the storage client's only: an HttpRequestException is the store's too.
        if (exception is not (AmazonServiceException or HttpRequestException))
        {
            return false;
        }

        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails =
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = "Service Unavailable",
                Detail = "The storage service could not be reached or failed; nothing was stored by this request. Try again shortly.",
            },
        });
    }
}
