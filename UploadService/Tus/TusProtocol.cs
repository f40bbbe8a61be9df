using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using UploadService.Domain;

namespace UploadService.Tus;

/// <summary>tus 1.0.0: header names, what this server supports, and the parsers for the header values.</summary>
public static class TusProtocol
{
    public const string Version = "1.0.0";
    public const string OffsetContentType = "application/offset+octet-stream";

    /// <summary>Advertised in Tus-Extension, in this order.</summary>
    public static readonly string[] Extensions =
    [
        "creation", "creation-with-upload", "creation-defer-length", "termination", "checksum", "expiration", "concatenation",
    ];

    /// <summary>Advertised in Tus-Checksum-Algorithm; sha1 is the one the spec requires.</summary>
    public static readonly string[] ChecksumAlgorithms = ["sha1", "sha256", "md5"];

    public const int ChecksumMismatchStatus = 460;

    public static class Headers
    {
        public const string TusResumable = "Tus-Resumable";
        public const string TusVersion = "Tus-Version";
        public const string TusExtension = "Tus-Extension";
        public const string TusMaxSize = "Tus-Max-Size";
        public const string TusChecksumAlgorithm = "Tus-Checksum-Algorithm";
        public const string UploadOffset = "Upload-Offset";
        public const string UploadLength = "Upload-Length";
        public const string UploadDeferLength = "Upload-Defer-Length";
        public const string UploadMetadata = "Upload-Metadata";
        public const string UploadExpires = "Upload-Expires";
        public const string UploadChecksum = "Upload-Checksum";
        public const string UploadConcat = "Upload-Concat";
        public const string MethodOverride = "X-HTTP-Method-Override";
    }

    /// <summary>Upload-Offset / Upload-Length: a non-negative decimal integer, nothing else.</summary>
    public static bool TryParseLength(string? value, out long length) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out length);

    /// <summary>
    /// Upload-Metadata: comma-separated pairs "key base64value" (the value may be absent); keys are
    /// non-empty, unique, without spaces or commas. Values are decoded as UTF-8 where they are text.
    /// </summary>
    public static bool TryParseMetadata(
        string? header, [NotNullWhen(true)] out IReadOnlyDictionary<string, string>? metadata, [NotNullWhen(false)] out string? error)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        metadata = result;
        error = null;
        if (string.IsNullOrWhiteSpace(header))
        {
            return true;
        }

        foreach (var rawPair in header.Split(','))
        {
            var pair = rawPair.Trim();
            var parts = pair.Split(' ');
            if (parts.Length > 2 || parts[0].Length == 0)
            {
                error = $"Upload-Metadata: '{pair}' is not 'key base64value'.";
                metadata = null;
                return false;
            }

            var value = "";
            if (parts.Length == 2)
            {
                try
                {
                    value = Encoding.UTF8.GetString(Convert.FromBase64String(parts[1]));
                }
                catch (FormatException)
                {
                    error = $"Upload-Metadata: the value of '{parts[0]}' is not base64.";
                    metadata = null;
                    return false;
                }
            }

            if (!result.TryAdd(parts[0], value))
            {
                error = $"Upload-Metadata: the key '{parts[0]}' appears twice.";
                metadata = null;
                return false;
            }
        }

        return true;
    }

    /// <summary>Upload-Checksum: "algorithm base64digest" with an advertised algorithm and a digest of its size.</summary>
    public static bool TryParseChecksum(
        string? header, [NotNullWhen(true)] out ChunkChecksum? checksum, [NotNullWhen(false)] out string? error)
    {
        checksum = null;
        var parts = (header ?? "").Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 2)
        {
            error = "Upload-Checksum must be 'algorithm base64digest'.";
            return false;
        }

        var algorithm = parts[0].ToLowerInvariant();
        var size = algorithm switch { "sha1" => 20, "sha256" => 32, "md5" => 16, _ => 0 };
        if (size == 0)
        {
            error = $"Unsupported checksum algorithm '{parts[0]}'; supported: {string.Join(", ", ChecksumAlgorithms)}.";
            return false;
        }

        byte[] digest;
        try
        {
            digest = Convert.FromBase64String(parts[1]);
        }
        catch (FormatException)
        {
            error = "The Upload-Checksum digest is not base64.";
            return false;
        }

        if (digest.Length != size)
        {
            error = $"A {algorithm} digest is {size} bytes, not {digest.Length}.";
            return false;
        }

        checksum = new ChunkChecksum(algorithm, digest);
        error = null;
        return true;
    }

    /// <summary>
    /// Upload-Concat: "partial", or "final;" followed by space-separated upload URLs (absolute or paths),
    /// each ending in /uploads/{id}. Returns the ids of a final in order (null for partial).
    /// </summary>
    public static bool TryParseConcat(
        string header, out bool isPartial, out IReadOnlyList<string>? partialIds, [NotNullWhen(false)] out string? error)
    {
        isPartial = false;
        partialIds = null;
        error = null;
        var value = header.Trim();
        if (value == "partial")
        {
            isPartial = true;
            return true;
        }

        if (!value.StartsWith("final;", StringComparison.Ordinal))
        {
            error = "Upload-Concat must be 'partial' or 'final;<urls>'.";
            return false;
        }

        var ids = new List<string>();
        foreach (var url in value["final;".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var path = Uri.TryCreate(url, UriKind.Absolute, out var absolute) ? absolute.AbsolutePath : url;
            var marker = path.LastIndexOf("/uploads/", StringComparison.Ordinal);
            var id = marker < 0 ? "" : path[(marker + "/uploads/".Length)..];
            if (!UploadId.TryParse(id, out _))
            {
                error = $"Upload-Concat: '{url}' is not an upload URL of this server.";
                return false;
            }

            ids.Add(id);
        }

        if (ids.Count == 0)
        {
            error = "Upload-Concat: a final upload names at least one partial upload.";
            return false;
        }

        partialIds = ids;
        return true;
    }

    /// <summary>Upload-Expires uses the HTTP date format (RFC 9110).</summary>
    public static string FormatExpires(DateTimeOffset expiresAt) =>
        expiresAt.ToUniversalTime().ToString("r", CultureInfo.InvariantCulture);
}
