using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using UploadService.Apis;
using UploadService.Domain;
using static UploadService.Tus.TusProtocol;
using static UploadService.Tus.TusResults;

namespace UploadService.Tus;

/// <summary>The requests that ask: OPTIONS (what this server supports) and HEAD (where an upload stands).</summary>
public static class TusQueries
{
    /// <summary>OPTIONS: the version, extensions, size limit and checksum algorithms.</summary>
    public static NoContent Options(HttpResponse response, IOptions<UploadOptions> limits)
    {
        response.Headers[Headers.TusVersion] = TusProtocol.Version;
        response.Headers[Headers.TusExtension] = string.Join(",", TusProtocol.Extensions);
        response.Headers[Headers.TusMaxSize] = limits.Value.MaxFileBytes.ToString(CultureInfo.InvariantCulture);
        response.Headers[Headers.TusChecksumAlgorithm] = string.Join(',', ChecksumAlgorithms);
        return TypedResults.NoContent();
    }

    /// <summary>HEAD: the upload's offset (bytes safely stored), length, metadata, expiry; never cached.</summary>
    public static async Task<Results<Ok, ProblemHttpResult>> Head(
        string id, UserId user, HttpRequest request, HttpResponse response, [AsParameters] TusContext tus,
        CancellationToken cancellationToken)
    {
        response.Headers.CacheControl = "no-store";
        var upload = UploadId.TryParse(id, out var uploadId) ? await tus.Store.GetUploadAsync(user, uploadId, cancellationToken) : null;
        if (upload is null)
        {
            return NotFound(id);
        }

        if (upload.Info.IsExpired(tus.Time.GetUtcNow()))
        {
            return Gone(id);
        }

        // Complete but not its file yet (the service stopped in between): a client that sees Upload-Offset ==
        // Upload-Length relies on the file being there. Unless a request holds the upload (it commits it).
        if (upload.Info.AwaitsCommit && tus.Locks.TryAcquire(id) is { } held)
        {
            using (held)
            {
                // Read again under the lock: a request may have changed or removed it meanwhile.
                upload = await tus.Store.GetUploadAsync(user, uploadId!, cancellationToken);
                if (upload is null)
                {
                    return NotFound(id);
                }

                await TusAppend.CommitIfCompleteAsync(upload, tus, cancellationToken);
            }
        }

        var info = upload.Info;
        SetUploadHeaders(response, info, withOffset: true);
        if (info.Metadata is not null)
        {
            response.Headers[Headers.UploadMetadata] = info.Metadata;
        }

        if (info.IsPartial)
        {
            response.Headers[Headers.UploadConcat] = "partial";
        }
        else if (info.PartialIds is { } partials)
        {
            response.Headers[Headers.UploadConcat] = "final;" + string.Join(' ', partials.Select(partial => UploadUrl(request, partial)));
        }

        return TypedResults.Ok();
    }
}
