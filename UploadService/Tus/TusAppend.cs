using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Net.Http.Headers;
using UploadService.Apis;
using UploadService.Domain;
using UploadService.Storage;
using static UploadService.Tus.TusProtocol;
using static UploadService.Tus.TusResults;

namespace UploadService.Tus;

/// <summary>PATCH: appends the body at Upload-Offset (one request per upload at a time); also the body of a creation with data.</summary>
public static class TusAppend
{
    public static async Task<Results<NoContent, ProblemHttpResult>> Patch(
        string id, UserId user, HttpRequest request, HttpResponse response, [AsParameters] TusContext tus,
        CancellationToken cancellationToken)
    {
        if (!IsOffsetContentType(request.ContentType))
        {
            return Problem(StatusCodes.Status415UnsupportedMediaType, $"PATCH takes Content-Type: {OffsetContentType}.");
        }

        if (!TryParseLength(request.Headers[Headers.UploadOffset], out var offset))
        {
            return Problem(StatusCodes.Status400BadRequest, "Upload-Offset must be a non-negative integer.");
        }

        long? declaredLength = null;
        if (request.Headers.ContainsKey(Headers.UploadLength))
        {
            if (!TryParseLength(request.Headers[Headers.UploadLength], out var parsed))
            {
                return Problem(StatusCodes.Status400BadRequest, "Upload-Length must be a non-negative integer.");
            }

            declaredLength = parsed;
        }

        ChunkChecksum? checksum = null;
        if (request.Headers.ContainsKey(Headers.UploadChecksum)
            && !TryParseChecksum(request.Headers[Headers.UploadChecksum], out checksum, out var checksumError))
        {
            return Problem(StatusCodes.Status400BadRequest, checksumError);
        }

        if (!UploadId.TryParse(id, out var uploadId))
        {
            return NotFound(id);
        }

        using var held = tus.Locks.TryAcquire(id);
        if (held is null)
        {
            return Problem(StatusCodes.Status423Locked, "Another request is writing to this upload; retry when it has finished.");
        }

        var upload = await tus.Store.GetUploadAsync(user, uploadId, cancellationToken);
        if (upload is not null && !upload.Info.IsExpired(tus.Time.GetUtcNow()))
        {
            await CommitIfCompleteAsync(upload, tus, cancellationToken);
        }

        var decision = TusRules.CheckAppend(
            upload?.Info, tus.Time.GetUtcNow(), offset, declaredLength, request.ContentLength, tus.MaxFileBytes, out var next);
        switch (decision)
        {
            case TusAppendDecision.NotFound: return NotFound(id);
            case TusAppendDecision.Expired: return Gone(id);
            case TusAppendDecision.Forbidden:
                return Problem(StatusCodes.Status403Forbidden, "The final upload of a concatenation cannot be patched.");
            case TusAppendDecision.Committed:
                return Problem(StatusCodes.Status403Forbidden, $"Upload '{id}' is complete and became {FilesApi.Url(FileName.Stored(next.FileName!))}; it takes no more bytes.");
            case TusAppendDecision.OffsetMismatch:
                return Problem(StatusCodes.Status409Conflict,
                    $"Upload-Offset is {offset} but the upload is at {next.Offset}; resume from the offset HEAD reports.");
            case TusAppendDecision.LengthConflict:
                return Problem(StatusCodes.Status400BadRequest, "Upload-Length cannot change once set, nor be below the offset.");
            case TusAppendDecision.TooLarge:
                return TooLarge(next.Length ?? tus.MaxFileBytes);
        }

        await using var lease = await tus.Quota.TryReserveAsync(user, request.ContentLength ?? 0, cancellationToken);
        if (lease is null)
        {
            return FilesApi.OverQuota(tus.Quota);
        }

        if (await AppendBodyAsync(request.Body, upload!, next, checksum, tus, lease, cancellationToken) is { } problem)
        {
            return problem;
        }

        SetUploadHeaders(response, upload!.Info, withOffset: true);
        return TypedResults.NoContent();
    }

    /// <summary>
    /// Appends <paramref name="body"/> within <paramref name="lease"/> (and commits the upload when it is then
    /// complete), and tells the lease what stays stored; a problem when the append failed.
    /// </summary>
    internal static async Task<ProblemHttpResult?> AppendBodyAsync(
        Stream body, TusUpload upload, TusUploadInfo next, ChunkChecksum? checksum, TusContext tus,
        UserQuota.QuotaLease lease, CancellationToken cancellationToken)
    {
        var start = upload.Info.Offset;
        var maxBytes = TusRules.MaxChunkBytes(next, tus.MaxFileBytes);
        using var chunk = new TusChunk(lease.Wrap(body), upload.Info, maxBytes, checksum, tus.Hashes);
        try
        {
            lease.KeepAll(); // until the store says how much: a failed append may keep any part of the chunk
            await upload.AppendAsync(chunk, next with { ExpiresAt = tus.NextExpiry() }, cancellationToken);
            lease.Keep(upload.Info.Offset - start);
            return null;
        }
        catch (QuotaExceededException)
        {
            lease.Keep(0); // the chunk was discarded
            return Problem(StatusCodes.Status413PayloadTooLarge, tus.Quota.Describe());
        }
        catch (ChecksumMismatchException ex)
        {
            return Problem(ChecksumMismatchStatus, ex.Message, "Checksum Mismatch");
        }
        catch (FileTooLargeException)
        {
            return TooLarge(next.Length ?? tus.MaxFileBytes);
        }
        catch (UploadContentException ex)
        {
            return ex.InnerException is BadHttpRequestException bad
                ? Problem(bad.StatusCode, bad.Message)
                : Problem(StatusCodes.Status400BadRequest, ex.Message);
        }
    }

    /// <summary>
    /// An upload with every byte stored that is not its file yet (the service stopped in between) becomes it
    /// now, so that a client which sees Upload-Offset == Upload-Length can rely on the file being there. Call
    /// with the upload's lock held.
    /// </summary>
    internal static async Task CommitIfCompleteAsync(TusUpload upload, TusContext tus, CancellationToken cancellationToken)
    {
        if (upload.Info.AwaitsCommit)
        {
            await upload.CommitAsync(tus.Hashes.TakeSha256(upload.Info), cancellationToken);
        }
    }

    internal static bool HasBody(HttpRequest request) =>
        request.ContentLength > 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count > 0);

    internal static bool IsOffsetContentType(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var media)
        && string.Equals(media.MediaType.Value, OffsetContentType, StringComparison.OrdinalIgnoreCase);
}
