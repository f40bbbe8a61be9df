using System.Security.Cryptography;
using UploadService.Security;

namespace UploadService.Storage;

/// <summary>
/// Unfinished resumable uploads (tus), kept beside the files by the same backend so that a finished
/// upload becomes a file without copying. State lives in the store, never only in memory:
/// <list type="bullet">
/// <item>An append is durable before it is acknowledged: the bytes are flushed to stable storage before
/// the persisted offset moves past them, so after a crash the offset never covers missing bytes.</item>
/// <item>Completing an upload is a save: the file appears atomically, replacing any previous version,
/// exactly as <see cref="IFileStore.SaveAsync"/> would leave it.</item>
/// <item>Callers serialize appends to one upload (see <c>UploadLocks</c>); users are isolated.</item>
/// </list>
/// </summary>
public interface IUploadStore
{
    Task<UploadRecord> CreateUploadAsync(UserId user, UploadRecord upload, CancellationToken cancellationToken);

    /// <summary>
    /// The upload's state, expired or not, or null when there is none. An upload with every byte stored may
    /// read with <see cref="UploadRecord.FileName"/> null: <see cref="CompleteUploadAsync"/> makes it a file
    /// (or, when it already became one, says which).
    /// </summary>
    Task<UploadRecord?> GetUploadAsync(UserId user, string id, CancellationToken cancellationToken);

    /// <summary>
    /// Appends <paramref name="content"/> at the upload's offset (at most <paramref name="maxBytes"/>) and
    /// persists the new offset and <paramref name="expiresAt"/>. With a <paramref name="checksum"/> the chunk
    /// is all or nothing (<see cref="ChecksumMismatchException"/> discards it); without one, the bytes that
    /// arrived before a broken connection are kept and the exception is rethrown.
    /// </summary>
    Task<UploadRecord> AppendAsync(
        UserId user, UploadRecord upload, Stream content, long maxBytes, ChunkChecksum? checksum,
        DateTimeOffset expiresAt, CancellationToken cancellationToken);

    /// <summary>Persists a changed record (a deferred length now known).</summary>
    Task<UploadRecord> UpdateUploadAsync(UserId user, UploadRecord upload, CancellationToken cancellationToken);

    /// <summary>
    /// Turns a fully received upload into the file <paramref name="file"/> and marks the upload completed.
    /// Safe to repeat while the upload reads with <see cref="UploadRecord.FileName"/> null: a call after the
    /// file was made changes nothing and returns the file as it is now (a newer save of the same name, or
    /// null when it has been deleted since).
    /// </summary>
    Task<(UploadRecord Upload, StoredFile? File)> CompleteUploadAsync(
        UserId user, UploadRecord upload, FileName file, string contentType, CancellationToken cancellationToken);

    /// <summary>
    /// Concatenation: creates <paramref name="final"/> from the bytes of the (complete) partial uploads in
    /// order, then completes it as <see cref="CompleteUploadAsync"/> does; the partials are removed.
    /// </summary>
    Task<(UploadRecord Upload, StoredFile? File)> ConcatenateAsync(
        UserId user, UploadRecord final, IReadOnlyList<UploadRecord> partials, FileName file, string contentType,
        long maxBytes, CancellationToken cancellationToken);

    /// <summary>Removes the upload and its bytes; false when there was none.</summary>
    Task<bool> DeleteUploadAsync(UserId user, string id, CancellationToken cancellationToken);

    /// <summary>
    /// Removes every upload (of every user) whose expiry is at or before <paramref name="now"/>; returns how
    /// many. Each is removed while holding <paramref name="tryLock"/>(upload id); an upload whose lock is
    /// taken (a PATCH still writing) is skipped until a later sweep.
    /// </summary>
    Task<int> DeleteExpiredUploadsAsync(DateTimeOffset now, Func<string, IDisposable?> tryLock, CancellationToken cancellationToken);
}

/// <summary>
/// The persisted state of one upload. <see cref="Length"/> is null while deferred; <see cref="Metadata"/> is
/// the client's Upload-Metadata header as received (validated); <see cref="PartialIds"/> is set on a final
/// upload of a concatenation; <see cref="FileName"/> is set once the upload has become a file.
/// </summary>
public sealed record UploadRecord(
    string Id,
    long? Length,
    long Offset,
    string? Metadata,
    bool IsPartial,
    IReadOnlyList<string>? PartialIds,
    DateTimeOffset CreatedAt,
    DateTimeOffset ExpiresAt,
    string? FileName = null,
    string? ContentId = null)
{
    public bool IsFinal => PartialIds is not null;

    public bool IsComplete => Length is { } length && Offset == length;

    public bool IsExpired(DateTimeOffset now) => now >= ExpiresAt;
}

/// <summary>The checksum a client sent for one chunk (tus checksum extension).</summary>
public sealed record ChunkChecksum(string Algorithm, byte[] Expected)
{
    public IncrementalHash CreateHash() => IncrementalHash.CreateHash(Algorithm switch
    {
        "sha1" => HashAlgorithmName.SHA1,
        "sha256" => HashAlgorithmName.SHA256,
        "md5" => HashAlgorithmName.MD5,
        _ => throw new ArgumentOutOfRangeException(nameof(Algorithm), Algorithm, "unsupported checksum algorithm"),
    });
}

public sealed class ChecksumMismatchException(string algorithm)
    : Exception($"The chunk's {algorithm} checksum does not match Upload-Checksum; the chunk was discarded.");
