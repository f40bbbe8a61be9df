using UploadService.Storage;

namespace UploadService.Tus;

/// <summary>The outcome of checking a request against an upload's state, before any byte is read.</summary>
public enum AppendDecision
{
    Accept,
    NotFound,
    Expired,
    /// <summary>The final upload of a concatenation takes no PATCH (403).</summary>
    Forbidden,
    /// <summary>The upload already became a file: its bytes are the file's now (403).</summary>
    Completed,
    /// <summary>Upload-Offset differs from the upload's offset (409).</summary>
    OffsetMismatch,
    /// <summary>Upload-Length sent again with another value, or below the offset (400).</summary>
    LengthConflict,
    /// <summary>The chunk (by Content-Length) would run past Upload-Length or the size limit (413).</summary>
    TooLarge,
}

/// <summary>The upload state machine: which transitions tus 1.0.0 allows, independent of HTTP.</summary>
public static class UploadRules
{
    /// <summary>
    /// Checks a PATCH: <paramref name="clientOffset"/> from Upload-Offset, <paramref name="declaredLength"/>
    /// from Upload-Length (to settle a deferred length), <paramref name="contentLength"/> when known.
    /// On <see cref="AppendDecision.Accept"/>, <paramref name="next"/> is the record to append to (with the
    /// length settled) and <paramref name="maxBytes"/> how many bytes the chunk may carry.
    /// </summary>
    public static AppendDecision CheckAppend(
        UploadRecord? upload, DateTimeOffset now, long clientOffset, long? declaredLength, long? contentLength,
        long maxFileBytes, out UploadRecord next, out long maxBytes)
    {
        next = upload!;
        maxBytes = 0;
        if (upload is null)
        {
            return AppendDecision.NotFound;
        }

        if (upload.IsExpired(now))
        {
            return AppendDecision.Expired;
        }

        if (upload.IsFinal)
        {
            return AppendDecision.Forbidden;
        }

        if (upload.FileName is not null)
        {
            return AppendDecision.Completed;
        }

        if (clientOffset != upload.Offset)
        {
            return AppendDecision.OffsetMismatch;
        }

        if (declaredLength is { } length)
        {
            if (upload.Length is { } known ? known != length : length < upload.Offset)
            {
                return AppendDecision.LengthConflict;
            }

            if (length > maxFileBytes)
            {
                return AppendDecision.TooLarge;
            }

            next = upload with { Length = length };
        }

        maxBytes = (next.Length ?? maxFileBytes) - next.Offset;
        return contentLength > maxBytes ? AppendDecision.TooLarge : AppendDecision.Accept;
    }

    /// <summary>Whether a created upload may be turned into a file now: all bytes here, and not a partial.</summary>
    public static bool ShouldComplete(UploadRecord upload) =>
        upload.IsComplete && !upload.IsPartial && upload.FileName is null;
}
