using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging.Abstractions;
using UploadService.Domain;

namespace UploadService.Storage;

/// <summary>
/// The file store's algorithm, written once for every backend: a save streams the bytes into a new blob
/// (never overwritten, named by a fresh content id), makes them durable, and only then switches the name's
/// record to it; the previous version's blob is deleted after that switch. Readers therefore see the old
/// file or the new one, never a mix; a failed save leaves the previous version untouched. The record
/// switch and a delete are serialized per name by an in-process gate (one process owns a store: one
/// container per user); bytes stream outside it. No client string ever becomes part of a path or key:
/// users and names are addressed by their SHA-256 (<see cref="FileKey"/>).
/// <para>
/// A backend (<see cref="FileSystemFileStore"/>, <see cref="S3FileStore"/>) implements only the primitives
/// below: records (read, stage and switch, delete, read all of a user's), blobs (write, open, delete, total
/// size) and the bytes of unfinished uploads.
/// </para>
/// </summary>
public abstract partial class FileStore : IFileStore, ITusStore
{
    private const int GateCount = 64;
    private const int OpenAttempts = 3;

    private readonly SemaphoreSlim[] _gates =
        Enumerable.Range(0, GateCount).Select(_ => new SemaphoreSlim(1, 1)).ToArray();

    private protected readonly TimeProvider Time;
    private protected readonly ILogger Logger;

    private protected FileStore(TimeProvider? time, ILogger? logger)
    {
        Time = time ?? TimeProvider.System;
        Logger = logger ?? NullLogger.Instance;
    }

    /// <summary>
    /// Readies the store's local state before the first request (a hosted service calls it at start-up; a
    /// constructor does no I/O): the filesystem store recovers from a crash (the s3 store has nothing local). One
    /// process owns a store, so what a previous run left in flight is garbage.
    /// </summary>
    public abstract void Open();

    public async Task<StoredFile> SaveAsync(
        UserId user, FileName name, Stream content, string contentType, long maxBytes, CancellationToken cancellationToken)
    {
        var file = FileKey.Of(user, name.Value);
        var contentId = NewContentId();
        await using var blob = await CreateBlobAsync(file, contentId, cancellationToken);
        var (size, sha256) = await HashingCopy.CopyAsync(content, blob.Destination, maxBytes, cancellationToken);
        var record = new FileRecord(name.Value, size, sha256, contentType, Time.GetUtcNow(), contentId) { Content = blob.TakeSmallContent() };
        return await CommitAsync(file, blob, record, cancellationToken);
    }

    /// <summary>
    /// Makes <paramref name="blob"/>'s bytes durable and the current version of the file: the new record is
    /// staged while the bytes are published, then switched in under the name's gate, and the previous
    /// version's blob is deleted. Once the bytes are published the switch is not abandoned halfway; when it
    /// fails, the blob is taken back (<see cref="PendingBlob.RetractAsync"/>).
    /// </summary>
    private protected async Task<StoredFile> CommitAsync(FileKey file, PendingBlob blob, FileRecord record, CancellationToken cancellationToken)
    {
        var staging = StageRecordAsync(file, record);
        PendingRecord? staged = null;
        try
        {
            await blob.PublishAsync(cancellationToken);
            try
            {
                staged = await staging;
            }
            catch
            {
                await blob.RetractAsync();
                throw;
            }

            FileRecord? previous;
            var gate = GateFor(file);
            await gate.WaitAsync(CancellationToken.None);
            try
            {
                previous = await ReadReplacedRecordAsync(file);
                if (previous is not null && previous.ContentId != record.ContentId)
                {
                    await ReleaseRecordAsync(file, previous);
                }

                await staged.SwitchAsync();
            }
            catch
            {
                await blob.RetractAsync();
                throw;
            }
            finally
            {
                gate.Release();
            }

            if (previous is not null && previous.ContentId != record.ContentId)
            {
                await DeleteBlobAsync(file, previous);
            }

            return record.ToStoredFile();
        }
        finally
        {
            staged ??= await staging.ContinueWith(
                task => task.IsCompletedSuccessfully ? task.Result : null, TaskScheduler.Default);
            if (staged is not null)
            {
                await staged.DisposeAsync(); // removes what was staged when it was not switched in
            }
        }
    }

    public async Task<FileContent?> OpenReadAsync(UserId user, FileName name, CancellationToken cancellationToken)
    {
        var file = FileKey.Of(user, name.Value);
        // A concurrent replace or delete may remove the blob between reading the record and opening the
        // blob; reading the record again then finds the new version (or none).
        for (var attempt = 0; attempt < OpenAttempts; attempt++)
        {
            var record = await ReadRecordAsync(file, cancellationToken);
            if (record is null)
            {
                return null;
            }

            if (OpenBlob(file, record) is { } content)
            {
                return new FileContent(record.ToStoredFile(), content);
            }
        }

        return null;
    }

    public async Task<bool> DeleteAsync(UserId user, FileName name, CancellationToken cancellationToken)
    {
        var file = FileKey.Of(user, name.Value);
        FileRecord? record;
        var gate = GateFor(file);
        await gate.WaitAsync(cancellationToken);
        try
        {
            record = await ReadRecordAsync(file, cancellationToken);
            if (record is null)
            {
                return false;
            }

            await ReleaseRecordAsync(file, record);
            await DeleteRecordAsync(file, cancellationToken);
        }
        finally
        {
            gate.Release();
        }

        await DeleteBlobAsync(file, record);
        return true;
    }

    public async Task<FileListing> ListAsync(
        UserId user, string prefix, int limit, string? startAfter, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        // Keys are hashes, so no backend can filter or sort by name: every record of the user is read. Fine
        // for one user's files; a per-user index would make this one read.
        var matches = new List<StoredFile>();
        await foreach (var record in ReadRecordsAsync(UserKey(user), cancellationToken))
        {
            if (record.Name.StartsWith(prefix, StringComparison.Ordinal)
                && (startAfter is null || string.CompareOrdinal(record.Name, startAfter) > 0))
            {
                matches.Add(record.ToStoredFile());
            }
        }

        matches.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        if (matches.Count <= limit)
        {
            return new FileListing(matches, null);
        }

        var page = matches.GetRange(0, limit);
        return new FileListing(page, page[^1].Name);
    }

    /// <summary>
    /// File sizes (from the backend's listing of blobs, plus the small files a backend keeps in their records) plus the persisted offset of each unfinished
    /// upload: a finished upload's bytes are a blob already, and bytes an append is still writing are the
    /// quota's business (in flight).
    /// </summary>
    public async Task<long> GetUsageAsync(UserId user, CancellationToken cancellationToken)
    {
        var userKey = UserKey(user);
        return await FileBytesAsync(userKey, cancellationToken) + await UnfinishedUploadBytesAsync(userKey, cancellationToken);
    }

    // ---- Tus uploads: each backend keeps their state its own way (see ITusStore) ----

    public abstract Task<TusUpload> CreateUploadAsync(UserId user, TusUploadInfo upload, CancellationToken cancellationToken);

    public abstract Task<TusUpload?> GetUploadAsync(UserId user, UploadId id, CancellationToken cancellationToken);

    public abstract Task<TusUpload> ConcatenateAsync(
        UserId user, TusUploadInfo final, IReadOnlyList<TusUpload> partials, long maxBytes, CancellationToken cancellationToken);

    public abstract Task<int> DeleteExpiredUploadsAsync(DateTimeOffset now, Func<string, IDisposable?> tryLock, CancellationToken cancellationToken);

    // ---- The backend's primitives ----

    /// <summary>The name's record, or null when there is none (or it is unreadable: logged).</summary>
    private protected abstract Task<FileRecord?> ReadRecordAsync(FileKey file, CancellationToken cancellationToken);

    /// <summary>
    /// The record a commit is about to replace (its blob goes after the switch), read under the name's gate; a
    /// backend that knows the name has none may answer without reading.
    /// </summary>
    private protected virtual Task<FileRecord?> ReadReplacedRecordAsync(FileKey file) => ReadRecordAsync(file, CancellationToken.None);

    /// <summary>Writes <paramref name="record"/> where readers cannot see it yet (durably, where that matters).</summary>
    private protected abstract Task<PendingRecord> StageRecordAsync(FileKey file, FileRecord record);

    private protected abstract Task DeleteRecordAsync(FileKey file, CancellationToken cancellationToken);

    /// <summary>
    /// Called under the name's gate just before <paramref name="record"/> stops being the name's record (replaced or
    /// deleted), for what a backend keeps beside it (the s3 backend: see <see cref="FileRecord.CompletesUpload"/>); its
    /// blob is deleted after the switch, not here. A failure fails the replace or delete, which then changes nothing.
    /// </summary>
    private protected virtual Task ReleaseRecordAsync(FileKey file, FileRecord record) => Task.CompletedTask;

    /// <summary>Every readable record of the user, in no particular order.</summary>
    private protected abstract IAsyncEnumerable<FileRecord> ReadRecordsAsync(string userKey, CancellationToken cancellationToken);

    /// <summary>A new blob for <paramref name="contentId"/>, to be written and then published or disposed.</summary>
    private protected abstract Task<PendingBlob> CreateBlobAsync(FileKey file, string contentId, CancellationToken cancellationToken);

    /// <summary>The blob <paramref name="record"/> points at, seekable; null when it is gone (replaced meanwhile).</summary>
    private protected abstract Stream? OpenBlob(FileKey file, FileRecord record);

    /// <summary>Removes the blob <paramref name="record"/> points at (if it has one); a failure is logged, not thrown (what is left is an orphan).</summary>
    private protected abstract Task DeleteBlobAsync(FileKey file, FileRecord record);

    /// <summary>The total size of the user's files' bytes: their blobs, and what small files keep in their records.</summary>
    private protected abstract Task<long> FileBytesAsync(string userKey, CancellationToken cancellationToken);

    /// <summary>The persisted bytes of the user's uploads that are not a blob yet.</summary>
    private protected abstract Task<long> UnfinishedUploadBytesAsync(string userKey, CancellationToken cancellationToken);

    // ---- Shared by the backends ----

    private protected static string NewContentId() => Guid.NewGuid().ToString("N");

    private protected static string UserKey(UserId user) => HexSha256(user.Value);

    private protected static string HexSha256(string value) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)));

    private SemaphoreSlim GateFor(FileKey file) =>
        _gates[(uint)HashCode.Combine(file.UserKey, file.NameKey) % GateCount];

    /// <summary>Where a file lives in any backend: the SHA-256 of its user and of its name.</summary>
    private protected readonly record struct FileKey(string UserKey, string NameKey)
    {
        public static FileKey Of(UserId user, string fileName) => new(FileStore.UserKey(user), HexSha256(fileName));
    }

    /// <summary>A record written beside the current one; <see cref="SwitchAsync"/> makes it current, disposing removes it unless switched.</summary>
    private protected abstract class PendingRecord : IAsyncDisposable
    {
        public abstract Task SwitchAsync();

        public abstract ValueTask DisposeAsync();
    }

    /// <summary>
    /// The bytes of a new version: written through <see cref="Destination"/>, made durable under their content
    /// id by <see cref="PublishAsync"/>, taken back by <see cref="RetractAsync"/> when the record switch
    /// fails; disposing removes whatever was not published.
    /// </summary>
    private protected abstract class PendingBlob : IAsyncDisposable
    {
        public abstract Stream Destination { get; }

        public abstract Task PublishAsync(CancellationToken cancellationToken);

        /// <summary>
        /// The bytes written, when the backend keeps a file this small in its record rather than in a blob (the s3
        /// backend: one request instead of two); nothing is published then. Null: the bytes are a blob.
        /// </summary>
        public virtual byte[]? TakeSmallContent() => null;

        public abstract Task RetractAsync();

        public abstract ValueTask DisposeAsync();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Unreadable record {Location} ignored")]
    private protected partial void LogUnreadableRecord(Exception exception, string location);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not delete {Location}")]
    private protected partial void LogDeleteFailed(Exception exception, string location);
}

/// <summary>
/// A file's record, as every backend stores it: the public description plus the current blob's id, or the bytes
/// themselves (<see cref="Content"/>) for a small file where the backend keeps them in the record.
/// </summary>
internal sealed record FileRecord(
    string Name, long Size, string Sha256, string ContentType, DateTimeOffset CreatedAt, string ContentId)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public byte[]? Content { get; init; }

    /// <summary>
    /// Set where this record alone says that the tus upload <see cref="ContentId"/> is committed: a small upload whose
    /// bytes all came in one append, committed without writing its state again (the s3 backend). Before the record is
    /// replaced or deleted, that upload's state is marked committed (<see cref="FileStore.ReleaseRecordAsync"/>).
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool CompletesUpload { get; init; }

    public StoredFile ToStoredFile() => new(Name, Size, Sha256, ContentType, CreatedAt);
}

[JsonSerializable(typeof(FileRecord))]
internal sealed partial class FileRecordJson : JsonSerializerContext;
