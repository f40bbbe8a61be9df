using Microsoft.Net.Http.Headers;

namespace UploadService.Security;

/// <summary>
/// Content types a browser would run or render as a document on the Worker's origin (HTML, SVG, XML,
/// JavaScript). Downloads of such files are sent as attachments, so an uploaded file can never become
/// stored XSS, whatever content type the uploader claimed. A type that does not parse counts as active.
/// </summary>
public static class ActiveContent
{
    private static readonly HashSet<string> ActiveTypes = new(StringComparer.OrdinalIgnoreCase)
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/xsl",
        "application/xslt+xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "text/ecmascript",
        "application/ecmascript",
        "text/vtt", // rendered by some browsers as a document
        "multipart/x-mixed-replace",
    };

    public static bool IsActive(string contentType)
    {
        if (!MediaTypeHeaderValue.TryParse(contentType, out var media) || media.MediaType.Value is not { } type)
        {
            return true;
        }

        // Any XML dialect (RSS, Atom, MathML…) can carry script in a browser.
        return ActiveTypes.Contains(type) || type.EndsWith("+xml", StringComparison.OrdinalIgnoreCase);
    }
}
