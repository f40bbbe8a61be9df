using Microsoft.AspNetCore.Http.HttpResults;
using UploadService.Domain;
using UploadService.Storage;
using static UploadService.Tus.TusResults;

namespace UploadService.Tus;

/// <summary>
/// The final upload of a concatenation (<c>Upload-Concat: final;…</c>): made at once from the user's complete
/// partial uploads, in order, and committed as its file; the partials are removed.
/// </summary>
public static class TusConcatenation
{
    public static async Task<Results<Created, ProblemHttpResult>> CreateFinalAsync(
        UserId user, TusUploadInfo final, string location, HttpResponse response, TusContext tus, CancellationToken cancellationToken)
    {
        // The partials are read while they are concatenated: nobody may write or terminate them meanwhile.
        var ids = final.PartialIds!.Distinct().ToList();
        var held = new List<IDisposable>();
        try
        {
            foreach (var id in ids)
            {
                if (tus.Locks.TryAcquire(id) is not { } partialLock)
                {
                    return Locked($"partial upload {id}");
                }

                held.Add(partialLock);
            }

            var partials = new Dictionary<string, TusUpload>(StringComparer.Ordinal);
            foreach (var id in ids)
            {
                var partial = await tus.Store.GetUploadAsync(user, UploadId.Stored(id), cancellationToken);
                if (partial is null || !partial.Info.IsPartial || partial.Info.IsExpired(final.CreatedAt))
                {
                    return Problem(StatusCodes.Status400BadRequest, $"Upload {id} is not a partial upload of yours (or it expired).");
                }

                if (!partial.Info.IsComplete)
                {
                    return Problem(StatusCodes.Status400BadRequest, $"Partial upload {id} is not complete yet.");
                }

                partials[id] = partial;
            }

            var inOrder = final.PartialIds!.Select(id => partials[id]).ToList();
            var length = inOrder.Sum(partial => partial.Info.Length!.Value);
            if (length > tus.MaxFileBytes)
            {
                return TooLarge(tus.MaxFileBytes);
            }

            var upload = await tus.Store.ConcatenateAsync(user, final with { Length = length }, inOrder, tus.MaxFileBytes, cancellationToken);
            ids.ForEach(tus.Hashes.Drop);
            SetUploadHeaders(response, upload.Info, withOffset: false);
            return TypedResults.Created(location);
        }
        finally
        {
            held.ForEach(partialLock => partialLock.Dispose());
        }
    }
}
