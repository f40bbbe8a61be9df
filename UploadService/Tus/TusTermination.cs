using Microsoft.AspNetCore.Http.HttpResults;
using UploadService.Domain;
using static UploadService.Tus.TusResults;

namespace UploadService.Tus;

/// <summary>DELETE (termination): the upload and its bytes are removed; a committed upload's file stays in /files.</summary>
public static class TusTermination
{
    public static async Task<Results<NoContent, ProblemHttpResult>> Terminate(
        string id, UserId user, [AsParameters] TusContext tus, CancellationToken cancellationToken)
    {
        if (!UploadId.TryParse(id, out var uploadId))
        {
            return NotFound(id);
        }

        using var held = tus.Locks.TryAcquire(id);
        if (held is null)
        {
            return Locked("this upload");
        }

        var upload = await tus.Store.GetUploadAsync(user, uploadId, cancellationToken);
        if (upload is null)
        {
            return NotFound(id);
        }

        await upload.TerminateAsync(cancellationToken);
        tus.Hashes.Drop(id);
        return TypedResults.NoContent();
    }
}
