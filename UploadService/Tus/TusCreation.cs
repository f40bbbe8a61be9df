using Microsoft.AspNetCore.Http.HttpResults;
using UploadService.Apis;
using UploadService.Domain;
using UploadService.Storage;
using static UploadService.Tus.TusProtocol;
using static UploadService.Tus.TusResults;

namespace UploadService.Tus;

/// <summary>
/// POST: creation (Upload-Length, or Upload-Defer-Length: 1), with an optional first chunk
/// (creation-with-upload), or the final upload of a concatenation (<see cref="TusConcatenation"/>).
/// The file a (non-partial) upload becomes is named and checked here, once, and stored with it.
/// </summary>
public static class TusCreation
{
    public static async Task<Results<Created, ProblemHttpResult>> Create(
        UserId user, HttpRequest request, HttpResponse response, [AsParameters] TusContext tus, CancellationToken cancellationToken)
    {
        var headers = request.Headers;
        var isPartial = false;
        IReadOnlyList<string>? partialIds = null;
        if (headers.ContainsKey(Headers.UploadConcat)
            && !TryParseConcat(headers[Headers.UploadConcat].ToString(), out isPartial, out partialIds, out var concatError))
        {
            return Problem(StatusCodes.Status400BadRequest, concatError);
        }

        long? length = null;
        if (partialIds is null)
        {
            if (headers.ContainsKey(Headers.UploadLength) && headers.ContainsKey(Headers.UploadDeferLength))
            {
                return Problem(StatusCodes.Status400BadRequest, "Send Upload-Length or Upload-Defer-Length, not both.");
            }

            if (headers.ContainsKey(Headers.UploadLength))
            {
                if (!TryParseLength(headers[Headers.UploadLength], out var declared))
                {
                    return Problem(StatusCodes.Status400BadRequest, "Upload-Length must be a non-negative integer.");
                }

                length = declared;
            }
            else if (headers[Headers.UploadDeferLength] != "1")
            {
                return Problem(StatusCodes.Status400BadRequest, "Send Upload-Length, or Upload-Defer-Length: 1.");
            }

            if (length > tus.MaxFileBytes)
            {
                return TooLarge(tus.MaxFileBytes);
            }
        }

        if (TusAppend.HasBody(request) && !TusAppend.IsOffsetContentType(request.ContentType))
        {
            return Problem(StatusCodes.Status415UnsupportedMediaType, $"A creation request with data takes Content-Type: {OffsetContentType}.");
        }

        var metadataHeader = headers[Headers.UploadMetadata].ToString();
        if (!TryParseMetadata(metadataHeader, out var metadata, out var metadataError))
        {
            return Problem(StatusCodes.Status400BadRequest, metadataError);
        }

        // The file the upload becomes; partials have none of their own.
        FileName? fileName = null;
        string? contentType = null;
        if (!isPartial)
        {
            if (!metadata.TryGetValue("filename", out var name))
            {
                return Problem(StatusCodes.Status400BadRequest,
                    "Upload-Metadata needs a 'filename': the name the finished upload gets in /files.");
            }

            if (!FileName.TryParse(name, out fileName, out var nameError))
            {
                return Problem(StatusCodes.Status400BadRequest, "Invalid filename in Upload-Metadata: " + nameError);
            }

            if (!FilesApi.TryGetContentType(metadata.GetValueOrDefault("filetype"), out contentType, out _))
            {
                return Problem(StatusCodes.Status400BadRequest, "Upload-Metadata 'filetype' is not a valid media type.");
            }
        }

        var now = tus.Time.GetUtcNow();
        var info = new TusUploadInfo(
            UploadId.New().Value, length, 0, string.IsNullOrWhiteSpace(metadataHeader) ? null : metadataHeader.Trim(),
            isPartial, partialIds, now, now + tus.Options.Value.Expiration, fileName?.Value, contentType);
        var location = UploadUrl(request, info.Id);
        if (partialIds is not null)
        {
            return await TusConcatenation.CreateFinalAsync(user, info, location, response, tus, cancellationToken);
        }

        // A declared length must fit the quota before the upload exists; a first chunk of a deferred one
        // reserves its Content-Length (or its bytes as they arrive).
        await using var lease = await tus.Quota.TryReserveAsync(user, length ?? request.ContentLength ?? 0, cancellationToken);
        if (lease is null)
        {
            return FilesApi.OverQuota(tus.Quota);
        }

        var upload = await tus.Store.CreateUploadAsync(user, info, cancellationToken);
        using var held = tus.Locks.TryAcquire(info.Id)!; // a new id: nobody else can hold it
        if (TusAppend.HasBody(request))
        {
            if (await TusAppend.AppendBodyAsync(request.Body, upload, upload.Info, null, tus, lease, cancellationToken) is { } problem)
            {
                // The upload exists; the client may resume it at the offset HEAD reports.
                response.Headers.Location = location;
                return problem;
            }
        }
        else
        {
            await TusAppend.CommitIfCompleteAsync(upload, tus, cancellationToken); // an empty upload is complete at once
        }

        SetUploadHeaders(response, upload.Info, withOffset: TusAppend.HasBody(request));
        return TypedResults.Created(location);
    }
}
