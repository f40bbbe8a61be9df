using UploadService.Domain;

namespace UploadService.Storage;

/// <summary>
/// Per-user file storage. Implementations (filesystem today, S3/R2 later, the tus store on top)
/// promise the same semantics:
/// <list type="bullet">
/// <item>A save is all or nothing: until it returns, readers see the previous version (or no file);
/// a failed, cancelled or oversized save leaves nothing behind.</item>
/// <item>Saving an existing name replaces it atomically.</item>
/// <item>Users are isolated: no call for one user can see or touch another user's files.</item>
/// </list>
/// </summary>
public interface IFileStore
{
    /// <summary>
    /// Streams <paramref name="content"/> into the store under <paramref name="name"/>, hashing it on the way.
    /// Throws <see cref="FileTooLargeException"/> when more than <paramref name="maxBytes"/> arrive and
    /// <see cref="UploadContentException"/> when reading <paramref name="content"/> fails; nothing is kept then.
    /// </summary>
    Task<StoredFile> SaveAsync(
        UserId user, FileName name, Stream content, string contentType, long maxBytes, CancellationToken cancellationToken);

    /// <summary>Opens the current version for reading (seekable), or returns null when there is no such file.</summary>
    Task<FileContent?> OpenReadAsync(UserId user, FileName name, CancellationToken cancellationToken);

    /// <summary>Removes the file; false when there was none.</summary>
    Task<bool> DeleteAsync(UserId user, FileName name, CancellationToken cancellationToken);

    /// <summary>
    /// Lists files whose names start with <paramref name="prefix"/>, sorted by name (ordinal),
    /// beginning after <paramref name="startAfter"/>, at most <paramref name="limit"/> of them.
    /// </summary>
    Task<FileListing> ListAsync(
        UserId user, string prefix, int limit, string? startAfter, CancellationToken cancellationToken);

    /// <summary>
    /// The bytes the user has stored: every file's current version plus the bytes persisted so far of the
    /// user's unfinished resumable uploads (<see cref="ITusStore"/>, same backend). Saves and appends in
    /// flight count once they are committed (a save) or persisted (an append); what the quota counts while
    /// they run is <c>UserQuota</c>'s business. Computed from the store's own listing, without reading blobs (the s3
    /// store reads its records, where small files keep their bytes).
    /// </summary>
    Task<long> GetUsageAsync(UserId user, CancellationToken cancellationToken);
}

/// <summary>What the store knows about one file; also the JSON shape clients see.</summary>
public sealed record StoredFile(string Name, long Size, string Sha256, string ContentType, DateTimeOffset CreatedAt);

/// <summary>An open file: its description and a seekable stream that the caller disposes.</summary>
public sealed record FileContent(StoredFile File, Stream Content) : IDisposable
{
    public void Dispose() => Content.Dispose();
}

/// <summary>One page of a listing; <see cref="NextStartAfter"/> is null on the last page.</summary>
public sealed record FileListing(IReadOnlyList<StoredFile> Files, string? NextStartAfter);

public sealed class FileTooLargeException(long maxBytes)
    : Exception($"The file is larger than the limit of {maxBytes} bytes.")
{
    public long MaxBytes { get; } = maxBytes;
}

/// <summary>
/// The source refused more bytes because the user's storage quota is spent (thrown by the quota's view of
/// a request body). Stores treat it as a failed write that keeps nothing, also in a tus append.
/// </summary>
public sealed class QuotaExceededException(long quotaBytes)
    : Exception($"The upload would exceed the storage quota of {quotaBytes} bytes.")
{
    public long QuotaBytes { get; } = quotaBytes;
}

/// <summary>Reading the upload's source stream failed (client disconnected, malformed body): not a storage fault.</summary>
public sealed class UploadContentException(Exception inner)
    : Exception("Reading the uploaded content failed: " + inner.Message, inner);
