using UploadService.Storage;

namespace UploadService.Tus;

/// <summary>The outcome of checking a request against an upload's state, before any byte is read.</summary>
public enum TusAppendDecision
{
    Accept,
    NotFound,
    Expired,
    /// <summary>The final upload of a concatenation takes no PATCH (403).</summary>
    Forbidden,
    /// <summary>The upload is committed: its bytes are its file's now (403).</summary>
    Committed,
    /// <summary>Upload-Offset differs from the upload's offset (409).</summary>
    OffsetMismatch,
    /// <summary>Upload-Length sent again with another value, or below the offset (400).</summary>
    LengthConflict,
    /// <summary>The chunk (by Content-Length) would run past Upload-Length or the size limit (413).</summary>
    TooLarge,
}

/// <summary>The upload state machine: which transitions tus 1.0.0 allows, independent of HTTP.</summary>
public static class TusRules
{
    /// <summary>
    /// Checks a PATCH: <paramref name="clientOffset"/> from Upload-Offset, <paramref name="declaredLength"/>
    /// from Upload-Length (to settle a deferred length), <paramref name="contentLength"/> when known.
    /// On <see cref="TusAppendDecision.Accept"/>, <paramref name="next"/> is the upload to append to (with the
    /// length settled); the chunk may carry up to <see cref="MaxChunkBytes"/> of it.
    /// </summary>
    public static TusAppendDecision CheckAppend(
        TusUploadInfo? upload, DateTimeOffset now, long clientOffset, long? declaredLength, long? contentLength,
        long maxFileBytes, out TusUploadInfo next)
    {
        next = upload!;
        if (upload is null)
        {
            return TusAppendDecision.NotFound;
        }

        if (upload.IsExpired(now))
        {
            return TusAppendDecision.Expired;
        }

        if (upload.IsFinal)
        {
            return TusAppendDecision.Forbidden;
        }

        if (upload.IsCommitted)
        {
            return TusAppendDecision.Committed;
        }

        if (clientOffset != upload.Offset)
        {
            return TusAppendDecision.OffsetMismatch;
        }

        if (declaredLength is { } length)
        {
            if (upload.Length is { } known ? known != length : length < upload.Offset)
            {
                return TusAppendDecision.LengthConflict;
            }

            if (length > maxFileBytes)
            {
                return TusAppendDecision.TooLarge;
            }

            next = upload with { Length = length };
        }

        return contentLength > MaxChunkBytes(next, maxFileBytes) ? TusAppendDecision.TooLarge : TusAppendDecision.Accept;
    }

    /// <summary>How many bytes a chunk appended to <paramref name="upload"/> may carry: to its length, or to the size limit.</summary>
    public static long MaxChunkBytes(TusUploadInfo upload, long maxFileBytes) => (upload.Length ?? maxFileBytes) - upload.Offset;
}
