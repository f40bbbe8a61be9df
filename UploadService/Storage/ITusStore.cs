using UploadService.Domain;
using UploadService.Tus;

namespace UploadService.Storage;

/// <summary>
/// Unfinished resumable uploads (tus), kept beside the files by the same backend so that a complete upload
/// becomes its file without copying. State lives in the store, never only in memory:
/// <list type="bullet">
/// <item>An append is durable before it is acknowledged: the bytes are stored durably before the persisted
/// offset moves past them, so after a crash the offset never covers missing bytes.</item>
/// <item>Committing an upload is a save: the file appears atomically, replacing any previous version,
/// exactly as <see cref="IFileStore.SaveAsync"/> would leave it.</item>
/// <item>Callers serialize the requests on one upload (see <see cref="TusLocks"/>); users are isolated.</item>
/// </list>
/// A request loads an upload once (<see cref="GetUploadAsync"/>) and acts on the handle it gets.
/// </summary>
public interface ITusStore
{
    /// <summary>Persists a new upload (no bytes yet) and returns its handle.</summary>
    Task<TusUpload> CreateUploadAsync(UserId user, TusUploadInfo upload, CancellationToken cancellationToken);

    /// <summary>
    /// The upload's handle, its state loaded once, expired or not; null when there is none. An upload whose
    /// bytes are all stored may read as not committed (the process stopped in between):
    /// <see cref="TusUpload.CommitAsync"/> makes it its file, or finds it is already.
    /// </summary>
    Task<TusUpload?> GetUploadAsync(UserId user, UploadId id, CancellationToken cancellationToken);

    /// <summary>
    /// Concatenation: creates <paramref name="final"/> from the bytes of the (complete) partial uploads in
    /// order and commits it as its file; the partials are removed.
    /// </summary>
    Task<TusUpload> ConcatenateAsync(
        UserId user, TusUploadInfo final, IReadOnlyList<TusUpload> partials, long maxBytes, CancellationToken cancellationToken);

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
/// upload of a concatenation. <see cref="FileName"/> and <see cref="ContentType"/> are the file it becomes
/// (validated at creation; none for a partial upload). An upload is complete when every byte is stored
/// (<see cref="IsComplete"/>) and committed once it is its file (<see cref="IsCommitted"/>).
/// </summary>
public sealed record TusUploadInfo(
    string Id,
    long? Length,
    long Offset,
    string? Metadata,
    bool IsPartial,
    IReadOnlyList<string>? PartialIds,
    DateTimeOffset CreatedAt,
    DateTimeOffset ExpiresAt,
    string? FileName,
    string? ContentType,
    bool IsCommitted = false)
{
    public bool IsFinal => PartialIds is not null;

    public bool IsComplete => Length is { } length && Offset == length;

    /// <summary>Complete, but not its file yet (a partial never becomes one: a final upload takes its bytes).</summary>
    public bool AwaitsCommit => IsComplete && !IsPartial && !IsCommitted;

    public bool IsExpired(DateTimeOffset now) => now >= ExpiresAt;
}

/// <summary>
/// One upload, as a request works on it: loaded once, then appended to, committed or terminated. The
/// append's policy (what a failed chunk keeps, checksums, the running SHA-256) is the chunk's
/// (<see cref="TusChunk"/>); a backend provides how bytes are written and state is persisted.
/// </summary>
public abstract class TusUpload
{
    private protected TusUpload(TusUploadInfo info) => Info = info;

    public TusUploadInfo Info { get; private protected set; }

    /// <summary>
    /// Appends <paramref name="chunk"/> at the upload's offset and persists <paramref name="next"/> (a
    /// settled length, the new expiry) with the new offset. When that makes a non-partial upload complete,
    /// it is committed as its file in the same step, which runs to its end once every byte has arrived. A failed
    /// copy keeps what the chunk says it keeps (<see cref="TusChunk.KeepsWhatArrived"/>) and rethrows; a commit
    /// that fails before the bytes are published leaves the upload at its previous offset (the client sends the
    /// last chunk again).
    /// </summary>
    public async Task AppendAsync(TusChunk chunk, TusUploadInfo next, CancellationToken cancellationToken)
    {
        var start = Info.Offset;
        await using var writer = await OpenWriterAsync(cancellationToken);
        try
        {
            await chunk.CopyToAsync(writer.Destination, cancellationToken);
        }
        catch (Exception ex) when (chunk.KeepsWhatArrived(ex) && writer.Position > start)
        {
            Info = await writer.PersistAsync(next with { Offset = writer.Position });
            throw;
        }
        catch (Exception)
        {
            await writer.DiscardAsync();
            throw;
        }

        var appended = next with { Offset = writer.Position };
        Info = appended.AwaitsCommit
            ? await writer.CommitAsync(appended, chunk.Sha256())
            : await writer.PersistAsync(appended);
        chunk.Persisted(Info.Offset);
    }

    /// <summary>
    /// Makes a complete upload that is not committed its file (hashing its bytes unless
    /// <paramref name="sha256"/> is given); safe to repeat: a commit that happened already changes nothing.
    /// </summary>
    public abstract Task CommitAsync(string? sha256, CancellationToken cancellationToken);

    /// <summary>Removes the upload and its bytes (not the file it became).</summary>
    public abstract Task TerminateAsync(CancellationToken cancellationToken);

    private protected abstract Task<UploadWriter> OpenWriterAsync(CancellationToken cancellationToken);
}

/// <summary>One append's access to the upload's bytes, positioned at its offset.</summary>
internal abstract class UploadWriter : IAsyncDisposable
{
    public abstract Stream Destination { get; }

    /// <summary>The offset after the bytes written so far.</summary>
    public abstract long Position { get; }

    /// <summary>Makes the bytes up to <paramref name="info"/>'s offset durable, then persists it.</summary>
    public abstract Task<TusUploadInfo> PersistAsync(TusUploadInfo info);

    /// <summary>Drops what this append wrote: the upload stays as it was.</summary>
    public abstract Task DiscardAsync();

    /// <summary>Every byte is written: the bytes become the upload's file, and the upload committed (not cancellable).</summary>
    public abstract Task<TusUploadInfo> CommitAsync(TusUploadInfo info, string? sha256);

    public abstract ValueTask DisposeAsync();
}
