using Microsoft.AspNetCore.Diagnostics;

namespace UploadService.Apis;

/// <summary>
/// A request the framework or a binder refused (<see cref="BadHttpRequestException"/>, e.g. a missing user
/// header): problem details with its status (a 4xx) and the reason as the detail, never a bare 400.
/// </summary>
public sealed class BadRequestHandler(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not BadHttpRequestException bad)
        {
            return false;
        }

        context.Response.StatusCode = bad.StatusCode;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = { Status = bad.StatusCode, Detail = bad.Message },
        });
    }
}
