using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using UploadService.Apis;
using UploadService.Domain;
using UploadService.Storage;
using static UploadService.Tus.TusProtocol;

namespace UploadService.Tus;

/// <summary>What the tus endpoints answer with: problem details, and the headers that describe an upload.</summary>
internal static class TusResults
{
    public static ProblemHttpResult Problem(int statusCode, string detail, string? title = null) =>
        TypedResults.Problem(detail: detail, statusCode: statusCode, title: title);

    public static ProblemHttpResult NotFound(string id) => Problem(StatusCodes.Status404NotFound, $"There is no upload '{id}'.");

    public static ProblemHttpResult Gone(string id) =>
        Problem(StatusCodes.Status410Gone, $"Upload '{id}' expired; its bytes are being deleted. Start a new upload.");

    public static ProblemHttpResult TooLarge(long maxBytes) =>
        Problem(StatusCodes.Status413PayloadTooLarge, $"The upload would exceed {maxBytes} bytes.");

    public static ProblemHttpResult Locked(string what) =>
        Problem(StatusCodes.Status423Locked, $"A request is using {what}; retry when it has finished.");

    /// <summary>An upload's URL at the Worker's public origin.</summary>
    public static string UploadUrl(HttpRequest request, string id) => PublicOrigin(request) + TusApi.RoutePrefix + "/" + id;

    /// <summary>Upload-Offset (where asked), Upload-Length or Upload-Defer-Length, and Upload-Expires or Upload-File.</summary>
    public static void SetUploadHeaders(HttpResponse response, TusUploadInfo upload, bool withOffset)
    {
        if (withOffset)
        {
            response.Headers[Headers.UploadOffset] = upload.Offset.ToString(CultureInfo.InvariantCulture);
        }

        if (upload.Length is { } length)
        {
            response.Headers[Headers.UploadLength] = length.ToString(CultureInfo.InvariantCulture);
        }
        else
        {
            response.Headers[Headers.UploadDeferLength] = "1";
        }

        if (upload.IsCommitted)
        {
            // Where the committed upload can be read (an extension header; same origin as Location).
            response.Headers["Upload-File"] = FilesApi.Url(FileName.Stored(upload.FileName!));
        }
        else
        {
            response.Headers[Headers.UploadExpires] = FormatExpires(upload.ExpiresAt);
        }
    }

    /// <summary>The Worker's public origin (it sets both headers); the request's own when called directly.</summary>
    private static string PublicOrigin(HttpRequest request)
    {
        var proto = request.Headers["X-Forwarded-Proto"].ToString().Split(',')[0].Trim().ToLowerInvariant();
        if (proto is not ("http" or "https"))
        {
            proto = request.Scheme;
        }

        var forwardedHost = request.Headers["X-Forwarded-Host"].ToString().Split(',')[0].Trim();
        var host = forwardedHost.Length > 0 && Uri.CheckHostName(new HostString(forwardedHost).Host) != UriHostNameType.Unknown
            ? new HostString(forwardedHost)
            : request.Host;
        return proto + "://" + host.ToUriComponent();
    }
}
