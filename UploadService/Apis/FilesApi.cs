using System.Buffers.Text;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using UploadService.Domain;
using UploadService.Security;
using UploadService.Storage;
using UploadService.Telemetry;

namespace UploadService.Apis;

/// <summary>
/// /files: plain uploads (PUT raw body, POST multipart), listing, download with ranges, delete.
/// Every route works inside the namespace of the user named by <see cref="UserId.HeaderName"/>.
/// </summary>
public static class FilesApi
{
    public const string DefaultContentType = "application/octet-stream";
    public const int DefaultListLimit = 100;
    public const int MaxListLimit = 1000;
    private const int MaxContentTypeLength = 256;
    private const int MaxBoundaryLength = 70; // RFC 2046

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static IEndpointRouteBuilder MapFilesApi(this IEndpointRouteBuilder app)
    {
        var files = app.MapGroup("/files");

        files.MapGet("", ListFiles);
        files.MapPost("", PostFiles).MeasuredAsUpload("multipart");
        files.MapPut("/{*name}", PutFile).MeasuredAsUpload("put");
        files.MapMethods("/{*name}", [HttpMethods.Get, HttpMethods.Head], GetFile);
        files.MapDelete("/{*name}", DeleteFile);

        return app;
    }

    public sealed record FileList(IReadOnlyList<StoredFile> Files, string? NextCursor);

    public sealed record UploadedFiles(IReadOnlyList<StoredFile> Files);

    /// <summary>PUT /files/{name}: the raw body becomes the file, replacing any previous version atomically.</summary>
    public static async Task<Results<Created<StoredFile>, ProblemHttpResult>> PutFile(
        string? name, UserId user, HttpRequest request, IFileStore store, IOptions<UploadOptions> options, UserQuota quota,
        CancellationToken cancellationToken)
    {
        if (!TryGetName(name, out var fileName, out var problem)
            || !TryGetContentType(request.ContentType, out var contentType, out problem))
        {
            return problem;
        }

        var maxBytes = options.Value.MaxFileBytes;
        if (request.ContentLength > maxBytes)
        {
            return TooLarge(maxBytes);
        }

        await using var lease = await quota.TryReserveAsync(user, request.ContentLength ?? 0, cancellationToken);
        if (lease is null)
        {
            return OverQuota(quota);
        }

        try
        {
            var stored = await store.SaveAsync(user, fileName, lease.Wrap(request.Body), contentType, maxBytes, cancellationToken);
            lease.Keep(stored.Size);
            return TypedResults.Created(Url(fileName), stored);
        }
        catch (Exception ex) when (ex is FileTooLargeException or UploadContentException or QuotaExceededException)
        {
            return UploadFailed(ex, maxBytes, quota);
        }
    }

    /// <summary>
    /// POST /files (multipart/form-data): every part with a filename becomes a file, optionally under
    /// <c>?prefix=</c>. Parts are streamed and committed one by one; a part that fails leaves nothing,
    /// parts committed before it stay (the problem lists them under <c>stored</c>).
    /// </summary>
    public static async Task<Results<Created<UploadedFiles>, ProblemHttpResult>> PostFiles(
        string? prefix, UserId user, HttpRequest request, IFileStore store, IOptions<UploadOptions> options, UserQuota quota,
        CancellationToken cancellationToken)
    {
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var mediaType)
            || !string.Equals(mediaType.MediaType.Value, "multipart/form-data", StringComparison.OrdinalIgnoreCase))
        {
            return Problem(StatusCodes.Status415UnsupportedMediaType, "POST /files takes multipart/form-data; use PUT /files/{name} for a raw body.");
        }

        var boundary = HeaderUtilities.RemoveQuotes(mediaType.Boundary).Value;
        if (string.IsNullOrEmpty(boundary) || boundary.Length > MaxBoundaryLength)
        {
            return Problem(StatusCodes.Status400BadRequest, "The multipart boundary is missing or longer than 70 characters.");
        }

        if (!string.IsNullOrEmpty(prefix) && !FileName.TryParse(prefix.EndsWith('/') ? prefix[..^1] : prefix, out _, out var prefixError))
        {
            return Problem(StatusCodes.Status400BadRequest, "Invalid prefix: " + prefixError);
        }

        var limits = options.Value;
        if (request.ContentLength > limits.MaxRequestBodyBytes)
        {
            return TooLarge(limits.MaxFileBytes);
        }

        // The whole request counts against the quota (its Content-Length up front when known, framing
        // included); what stays is the files stored.
        await using var lease = await quota.TryReserveAsync(user, request.ContentLength ?? 0, cancellationToken);
        if (lease is null)
        {
            return OverQuota(quota);
        }

        var stored = new List<StoredFile>();
        var reader = new MultipartReader(boundary, lease.Wrap(request.Body));
        while (true)
        {
            lease.Keep(stored.Sum(file => file.Size));
            MultipartSection? section;
            try
            {
                section = await reader.ReadNextSectionAsync(cancellationToken);
            }
            catch (BadHttpRequestException ex)
            {
                return Problem(ex.StatusCode, ex.Message, stored);
            }
            catch (QuotaExceededException)
            {
                return Problem(StatusCodes.Status413PayloadTooLarge, quota.Describe(), stored);
            }
            catch (Exception ex) when (ex is InvalidDataException or IOException)
            {
                return Problem(StatusCodes.Status400BadRequest, "Malformed multipart body: " + ex.Message, stored);
            }

            if (section is null)
            {
                break;
            }

            var disposition = section.GetContentDispositionHeader();
            if (disposition is null || !disposition.IsFileDisposition())
            {
                continue; // form fields are not files; the reader skips their bodies
            }

            var partName = disposition.FileNameStar.HasValue
                ? disposition.FileNameStar.Value
                : HeaderUtilities.RemoveQuotes(disposition.FileName).Value;
            if (!FileName.TryParse(prefix, partName, out var fileName, out var nameError))
            {
                return Problem(StatusCodes.Status400BadRequest, $"Invalid file name '{partName}': {nameError}", stored);
            }

            if (!TryGetContentType(section.ContentType, out var contentType, out var problem))
            {
                return Problem(StatusCodes.Status400BadRequest, problem.ProblemDetails.Detail!, stored);
            }

            try
            {
                stored.Add(await store.SaveAsync(user, fileName, section.Body, contentType, limits.MaxFileBytes, cancellationToken));
            }
            catch (Exception ex) when (ex is FileTooLargeException or UploadContentException or QuotaExceededException)
            {
                var failure = UploadFailed(ex, limits.MaxFileBytes, quota);
                return Problem(failure.StatusCode, failure.ProblemDetails.Detail!, stored);
            }
        }

        lease.Keep(stored.Sum(file => file.Size));

        if (stored.Count == 0)
        {
            return Problem(StatusCodes.Status400BadRequest, "The multipart body has no file part (a part with a filename).");
        }

        return TypedResults.Created((string?)null, new UploadedFiles(stored));
    }

    /// <summary>GET /files?prefix=&amp;limit=&amp;cursor=: one page of the user's files, sorted by name.</summary>
    public static async Task<Results<Ok<FileList>, ProblemHttpResult>> ListFiles(
        string? prefix, string? limit, string? cursor, UserId user, IFileStore store, CancellationToken cancellationToken)
    {
        prefix ??= "";
        if (prefix.Any(char.IsControl) || Encoding.UTF8.GetByteCount(prefix) > FileName.MaxBytes)
        {
            return Problem(StatusCodes.Status400BadRequest, $"The prefix must be at most {FileName.MaxBytes} bytes without control characters.");
        }

        var pageSize = DefaultListLimit;
        if (limit is not null
            && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out pageSize) || pageSize is < 1 or > MaxListLimit))
        {
            return Problem(StatusCodes.Status400BadRequest, $"limit must be an integer from 1 to {MaxListLimit}.");
        }

        string? startAfter = null;
        if (cursor is not null && !TryDecodeCursor(cursor, out startAfter))
        {
            return Problem(StatusCodes.Status400BadRequest, "The cursor is not one this service issued.");
        }

        var page = await store.ListAsync(user, prefix, pageSize, startAfter, cancellationToken);
        var nextCursor = page.NextStartAfter is null ? null : Base64Url.EncodeToString(Encoding.UTF8.GetBytes(page.NextStartAfter));
        return TypedResults.Ok(new FileList(page.Files, nextCursor));
    }

    /// <summary>
    /// GET/HEAD /files/{name}: the bytes, with ranges and conditional requests handled by the framework's
    /// file result; the strong ETag is the quoted SHA-256.
    /// </summary>
    public static async Task<Results<FileStreamHttpResult, ProblemHttpResult>> GetFile(
        string? name, UserId user, HttpRequest request, HttpResponse response, IFileStore store, CancellationToken cancellationToken)
    {
        if (!TryGetName(name, out var fileName, out var problem))
        {
            return problem;
        }

        var content = await store.OpenReadAsync(user, fileName, cancellationToken);
        if (content is null)
        {
            return NotFound(fileName);
        }

        // RFC 9110 §14.2: a Range in a unit other than bytes is ignored (the framework would serve it as bytes).
        if (request.Headers.Range.ToString() is { Length: > 0 } range
            && !range.TrimStart().StartsWith("bytes=", StringComparison.OrdinalIgnoreCase))
        {
            request.Headers.Remove(HeaderNames.Range);
        }

        // Stored content types are client-chosen: never let a browser upgrade them by sniffing, and never
        // let it render an active type (HTML, SVG, XML, JavaScript) on the Worker's origin.
        response.Headers.XContentTypeOptions = "nosniff";
        var file = content.File;
        if (ActiveContent.IsActive(file.ContentType))
        {
            var disposition = new ContentDispositionHeaderValue("attachment");
            disposition.SetHttpFileName(file.Name[(file.Name.LastIndexOf('/') + 1)..]);
            response.Headers.ContentDisposition = disposition.ToString();
        }

        return TypedResults.Stream(
            content.Content,
            file.ContentType,
            fileDownloadName: null,
            lastModified: file.CreatedAt,
            entityTag: new EntityTagHeaderValue($"\"{file.Sha256}\""),
            enableRangeProcessing: true);
    }

    /// <summary>DELETE /files/{name}.</summary>
    public static async Task<Results<NoContent, ProblemHttpResult>> DeleteFile(
        string? name, UserId user, IFileStore store, CancellationToken cancellationToken)
    {
        if (!TryGetName(name, out var fileName, out var problem))
        {
            return problem;
        }

        return await store.DeleteAsync(user, fileName, cancellationToken)
            ? TypedResults.NoContent()
            : NotFound(fileName);
    }

    private static bool TryGetName(string? name, out FileName fileName, out ProblemHttpResult problem)
    {
        if (FileName.TryParse(name, out var parsed, out var error))
        {
            fileName = parsed;
            problem = null!;
            return true;
        }

        fileName = null!;
        problem = Problem(StatusCodes.Status400BadRequest, "Invalid file name: " + error);
        return false;
    }

    internal static bool TryGetContentType(string? value, out string contentType, out ProblemHttpResult problem)
    {
        problem = null!;
        contentType = DefaultContentType;
        if (string.IsNullOrWhiteSpace(value))
        {
            return true;
        }

        if (value.Length > MaxContentTypeLength || !MediaTypeHeaderValue.TryParse(value, out _))
        {
            problem = Problem(StatusCodes.Status400BadRequest, "The Content-Type is not a valid media type.");
            return false;
        }

        contentType = value.Trim();
        return true;
    }

    private static bool TryDecodeCursor(string cursor, out string? startAfter)
    {
        startAfter = null;
        try
        {
            startAfter = StrictUtf8.GetString(Base64Url.DecodeFromChars(cursor));
        }
        catch (FormatException)
        {
            return false;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        return FileName.TryParse(startAfter, out _, out _);
    }

    /// <summary>A file's URL path (each segment escaped); the one place that builds it.</summary>
    public static string Url(FileName name) =>
        "/files/" + string.Join('/', name.Value.Split(FileName.Separator).Select(Uri.EscapeDataString));

    private static ProblemHttpResult UploadFailed(Exception exception, long maxBytes, UserQuota quota) => exception switch
    {
        FileTooLargeException => TooLarge(maxBytes),
        QuotaExceededException => OverQuota(quota),
        UploadContentException { InnerException: BadHttpRequestException bad } => Problem(bad.StatusCode, bad.Message),
        _ => Problem(StatusCodes.Status400BadRequest, exception.Message),
    };

    private static ProblemHttpResult TooLarge(long maxBytes) =>
        Problem(StatusCodes.Status413PayloadTooLarge, $"The file is larger than the limit of {maxBytes} bytes; nothing was stored.");

    internal static ProblemHttpResult OverQuota(UserQuota quota) =>
        Problem(StatusCodes.Status413PayloadTooLarge, quota.Describe());

    private static ProblemHttpResult NotFound(FileName name) =>
        Problem(StatusCodes.Status404NotFound, $"There is no file named '{name}'.");

    private static ProblemHttpResult Problem(int statusCode, string detail, IReadOnlyList<StoredFile>? stored = null) =>
        TypedResults.Problem(
            detail: detail,
            statusCode: statusCode,
            extensions: stored is { Count: > 0 }
                ? new Dictionary<string, object?> { ["stored"] = stored.Select(file => file.Name).ToArray() }
                : null);
}
