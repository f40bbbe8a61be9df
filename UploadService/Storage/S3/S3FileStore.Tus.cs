using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using UploadService.Domain;
using UploadService.Tus;

namespace UploadService.Storage;

/// <summary>
/// Resumable uploads in the bucket, so that a container with an empty disk resumes every one of them:
/// <code>
/// uploads/{sha256(userId)}/{id}/state          the state (JSON): the tus record, the multipart upload, its parts, the tail
/// uploads/{sha256(userId)}/{id}/tail.{guid}    the bytes past the last full part (less than one part)
/// users/{sha256(userId)}/blobs/{id}            the multipart upload's target: the file's bytes once complete
/// </code>
/// Each full part of the upload is a part of one multipart upload; what is left of a chunk (less than a
/// part) is kept as a tail object, under a new key each time. An append gathers the tail and the chunk in
/// memory, one part at a time (see <see cref="PartUploader"/>), uploads every part that fills, puts the new
/// tail, and only then replaces the state: the persisted offset never covers bytes that are not in the bucket,
/// and a crash before the state switch leaves the previous state, whose parts and tail are untouched (a
/// re-sent part of the same number replaces the orphaned one). The append that brings the last byte
/// uploads the rest of it from memory as the short last part (no tail is written and read back), completes
/// the multipart upload, commits its object as the file, without a copy, and writes the state once,
/// committed (the object alone cannot say the upload completed, since a newer save of the same name deletes
/// it). An upload small enough to be kept in its file's record (<see cref="SmallFileBytes"/>, no part uploaded)
/// is not sent as an object at all, and when all its bytes come in one append the record is the only write:
/// it names the upload (<see cref="FileRecord.CompletesUpload"/>), a state read later is checked against it
/// (<see cref="ReadCompletedByRecordAsync"/>), and a replace or delete of that record marks the state committed
/// before the record goes (<see cref="ReleaseRecordAsync"/>). Its SHA-256 is the one the appends computed
/// (<see cref="Tus.TusRunningHashes"/>), or read back where this process did not see every byte. The states
/// this process wrote stay in memory until their upload is committed or removed (one process serves a user,
/// and <see cref="Tus.TusLocks"/> serializes the requests on one upload), so a request reads an upload's state
/// at most once, and a PATCH after its creation not at all: a 4 KiB upload is two requests (its state at
/// creation; its record with its bytes).
/// </summary>
public sealed partial class S3FileStore
{
    private const string UploadsPrefix = "uploads/";

    // The state of each unfinished upload as this process last wrote it, by its key prefix.
    private readonly ConcurrentDictionary<string, UploadState> _states = new(StringComparer.Ordinal);

    // The users (keys) whose uploads this process has touched: the ones its expiry sweep looks at.
    private readonly ConcurrentDictionary<string, byte> _uploaders = new(StringComparer.Ordinal);

    public override async Task<TusUpload> CreateUploadAsync(UserId user, TusUploadInfo upload, CancellationToken cancellationToken)
    {
        var keys = LocateUpload(user, UploadId.Stored(upload.Id));
        var state = new UploadState(upload, keys.BlobKey, null, [], null, 0, false);
        await WriteStateAsync(keys, state, cancellationToken);
        return new Upload(this, user, keys, state);
    }

    public override async Task<TusUpload?> GetUploadAsync(UserId user, UploadId id, CancellationToken cancellationToken)
    {
        var keys = LocateUpload(user, id);
        if (_states.TryGetValue(keys.Prefix, out var known))
        {
            return new Upload(this, user, keys, known);
        }

        // Read, not remembered: only what this process writes fills the memory (a HEAD, which takes no lock,
        // could otherwise bring back the state of an upload that a termination is removing).
        var state = await ReadStateAsync(keys.StateKey, cancellationToken);
        if (state is { MayBeCompletedByRecord: true })
        {
            state = await ReadCompletedByRecordAsync(user, keys, state, cancellationToken);
        }

        return state is null ? null : new Upload(this, user, keys, state);
    }

    /// <summary>
    /// A small upload whose state may be older than its commit: committed where its file's record names it, else its
    /// state as read again after that record (a replace or delete of the record marks the upload committed before the
    /// record goes, see <see cref="ReleaseRecordAsync"/>).
    /// </summary>
    private async Task<UploadState?> ReadCompletedByRecordAsync(UserId user, UploadKeys keys, UploadState state, CancellationToken cancellationToken)
    {
        var record = await ReadRecordAsync(FileKey.Of(user, state.Info.FileName!), cancellationToken);
        return record is { CompletesUpload: true } && record.ContentId == state.Info.Id
            ? state.CompletedBy(record)
            : await ReadStateAsync(keys.StateKey, cancellationToken);
    }

    /// <summary>
    /// Before a record that alone says its small upload is committed (<see cref="FileRecord.CompletesUpload"/>) is
    /// replaced or deleted, the upload's state is marked committed: it would otherwise read as an upload still waiting for
    /// its bytes, and a client resuming it would send them again, over the newer file or bringing back a deleted one.
    /// (Without the upload's lock: a termination or sweep that removes the state between this read and write leaves
    /// it committed, which a later sweep removes.)
    /// </summary>
    private protected override async Task ReleaseRecordAsync(FileKey file, FileRecord record)
    {
        if (!record.CompletesUpload)
        {
            return;
        }

        var keys = LocateUpload(file.UserKey, record.ContentId);
        if (await ReadStateAsync(keys.StateKey, CancellationToken.None) is { MayBeCompletedByRecord: true } state)
        {
            await WriteStateAsync(keys, state.CompletedBy(record), CancellationToken.None);
        }
    }

    public override async Task<TusUpload> ConcatenateAsync(
        UserId user, TusUploadInfo final, IReadOnlyList<TusUpload> partials, long maxBytes, CancellationToken cancellationToken)
    {
        var sources = new List<(string Key, long Length)>();
        foreach (var partial in partials.Cast<Upload>())
        {
            await partial.PublishBytesAsync(cancellationToken);
            sources.Add((partial.Keys.BlobKey, partial.Info.Offset));
        }

        // Partials have any sizes, but R2 wants equal parts: the bytes go through the service once, as a save.
        await using (var concatenation = new SequentialStream(sources.Select(source =>
            (Func<Stream>)(() => new RangedObjectStream(_s3, _options.Bucket, source.Key, source.Length)))))
        {
            await SaveAsync(user, FileName.Stored(final.FileName!), concatenation, final.ContentType!, maxBytes, cancellationToken);
        }

        var keys = LocateUpload(user, UploadId.Stored(final.Id));
        var state = new UploadState(final with { Offset = final.Length!.Value, IsCommitted = true }, keys.BlobKey, null, [], null, 0, true);
        await WriteStateAsync(keys, state, CancellationToken.None);
        foreach (var partial in partials)
        {
            await partial.TerminateAsync(CancellationToken.None);
        }

        return new Upload(this, user, keys, state);
    }

    /// <summary>
    /// Sweeps the uploads of the users this process has served since it started, one prefix each: a container serves
    /// one user and may list nothing else (through its Durable Object it is refused the rest of the bucket). Uploads
    /// of a user who never comes back are left to the bucket's lifecycle rule (docs/storage.md).
    /// </summary>
    public override async Task<int> DeleteExpiredUploadsAsync(DateTimeOffset now, Func<string, IDisposable?> tryLock, CancellationToken cancellationToken)
    {
        var removed = 0;
        foreach (var uploader in _uploaders.Keys)
        {
            var (swept, left) = await DeleteExpiredUploadsAsync(uploader, now, tryLock, cancellationToken);
            removed += swept;
            if (left == 0)
            {
                // Nothing left to sweep: the user's next upload (or quota check) brings them back.
                _uploaders.TryRemove(uploader, out _);
            }
        }

        // What another process removed (the bucket is shared) is not in the listing: expired states leave memory too.
        foreach (var (prefix, known) in _states)
        {
            if (known.Info.IsExpired(now))
            {
                _states.TryRemove(prefix, out _);
            }
        }

        return removed;
    }

    /// <summary>Sweeps one user's prefix; says how many uploads it removed and how many are left.</summary>
    private async Task<(int Removed, int Left)> DeleteExpiredUploadsAsync(
        string userKey, DateTimeOffset now, Func<string, IDisposable?> tryLock, CancellationToken cancellationToken)
    {
        var (removed, left) = (0, 0);
        await foreach (var entry in ListObjectsAsync(UploadsPrefix + userKey + "/", cancellationToken))
        {
            // uploads/{userKey}/{id}/state, nothing else; a state that cannot be read (another layout, outside
            // damage) is swept too: its tails go, never a blob.
            if (entry.Key.Split('/') is not ["uploads", _, var id, "state"] || !UploadId.TryParse(id, out _))
            {
                continue;
            }

            var state = await ReadStateAsync(entry.Key, cancellationToken);
            using var held = state is not null && !state.Info.IsExpired(now) ? null : tryLock(id);
            if (held is null)
            {
                left++; // unexpired, or being written right now (its request ends and extends the expiry, or a later sweep gets it)
                continue;
            }

            await DeleteUploadObjectsAsync(entry.Key[..^"state".Length], userKey, state);
            removed++;
        }

        return (removed, left);
    }

    /// <summary>
    /// Unfinished uploads count their persisted offset from their state (their parts are not objects yet); expired
    /// ones count nothing, and their user joins the sweep: a process that started after they expired has not swept
    /// them yet, and they must not hold the user's quota until it does.
    /// </summary>
    private protected override async Task<long> UnfinishedUploadBytesAsync(string userKey, CancellationToken cancellationToken)
    {
        _uploaders.TryAdd(userKey, 0);
        var now = Time.GetUtcNow();
        long total = 0;
        await foreach (var entry in ListObjectsAsync(UploadsPrefix + userKey + "/", cancellationToken))
        {
            if (entry.Key.EndsWith("/state", StringComparison.Ordinal)
                && await ReadStateAsync(entry.Key, cancellationToken) is { Published: false } state
                && !state.Info.IsExpired(now))
            {
                total += state.Info.Offset;
            }
        }

        return total;
    }

    /// <summary>
    /// Removes the state, tails and multipart upload; the bytes too unless they became a file (a published
    /// upload whose file's record names its blob is a file, whatever its state says).
    /// </summary>
    private async Task DeleteUploadObjectsAsync(string prefix, string userKey, UploadState? state)
    {
        _states.TryRemove(prefix, out _);
        if (state?.MultipartId is not null)
        {
            try
            {
                await _s3.AbortMultipartUploadAsync(_options.Bucket, state.BlobKey, state.MultipartId, CancellationToken.None);
            }
            catch (AmazonServiceException ex)
            {
                // Gone already, or a server without abort (s3rver): a bucket lifecycle rule reaps leftover parts.
                LogDeleteFailed(ex, state.BlobKey);
            }
        }

        if (state is { Published: true, Info.IsCommitted: false }
            && (state.Info.FileName is not { } name // a partial's bytes: never a file
                || (await ReadRecordAsync(new FileKey(userKey, HexSha256(name)), CancellationToken.None))?.ContentId != state.Info.Id))
        {
            await TryDeleteAsync(state.BlobKey);
        }

        var keys = new List<string>();
        await foreach (var entry in ListObjectsAsync(prefix, CancellationToken.None))
        {
            keys.Add(entry.Key);
        }

        // The state goes last: until then a retry (or the sweep) still finds the upload.
        foreach (var key in keys.OrderBy(key => key.EndsWith("/state", StringComparison.Ordinal)))
        {
            await TryDeleteAsync(key);
        }
    }

    private UploadKeys LocateUpload(UserId user, UploadId id) => LocateUpload(UserKey(user), id.Value);

    private UploadKeys LocateUpload(string userKey, string id)
    {
        _uploaders.TryAdd(userKey, 0);
        return new(UploadsPrefix + userKey + "/" + id + "/", BlobKey(userKey, id));
    }

    private async Task WriteStateAsync(UploadKeys keys, UploadState state, CancellationToken cancellationToken)
    {
        await WriteJsonAsync(keys.StateKey, state, UploadStateJson.Default.UploadState, cancellationToken);
        Remember(keys, state);
    }

    /// <summary>Keeps an unfinished upload's state in memory; a committed upload's is not needed again.</summary>
    private void Remember(UploadKeys keys, UploadState state)
    {
        if (state.Info.IsCommitted)
        {
            _states.TryRemove(keys.Prefix, out _);
        }
        else
        {
            _states[keys.Prefix] = state;
        }
    }

    private Task<UploadState?> ReadStateAsync(string key, CancellationToken cancellationToken) =>
        ReadJsonAsync(key, UploadStateJson.Default.UploadState, cancellationToken);

    private sealed record UploadKeys(string Prefix, string BlobKey)
    {
        public string StateKey => Prefix + "state";

        public string NewTailKey() => Prefix + "tail." + Guid.NewGuid().ToString("N");
    }

    /// <summary>An upload in the bucket, as its state object said when the request loaded it.</summary>
    private sealed class Upload(S3FileStore store, UserId user, UploadKeys keys, UploadState state) : TusUpload(state.Info)
    {
        private UploadState _state = state;

        public UploadKeys Keys => keys;

        /// <summary>A writer that continues the upload where its state ends: its multipart upload, parts and tail.</summary>
        private protected override async Task<UploadWriter> OpenWriterAsync(CancellationToken cancellationToken) =>
            new Writer(this, await ResumeAsync(cancellationToken));

        private async Task<PartUploader> ResumeAsync(CancellationToken cancellationToken)
        {
            var uploader = new PartUploader(store, keys.BlobKey, _state.MultipartId,
                _state.Parts.Select(part => new PartETag(part.Number, part.ETag)));
            try
            {
                if (_state.TailKey is not null && _state.TailLength > 0)
                {
                    await uploader.PrefillAsync(_state.TailKey, cancellationToken);
                }

                return uploader;
            }
            catch
            {
                await uploader.DisposeAsync();
                throw;
            }
        }

        /// <summary>Puts the new tail, then switches the state to it (the one atomic step), then drops the old tail.</summary>
        public async Task<TusUploadInfo> PersistAsync(PartUploader uploader, TusUploadInfo info)
        {
            var tailKey = keys.NewTailKey();
            var tailLength = await uploader.PutTailAsync(tailKey);
            await SwitchStateAsync(_state with
            {
                Info = info,
                MultipartId = uploader.UploadId,
                Parts = uploader.Parts.Select(part => new UploadedPart(part.PartNumber!.Value, part.ETag)).ToList(),
                TailKey = tailLength > 0 ? tailKey : null,
                TailLength = tailLength,
            });
            return info;
        }

        /// <summary>
        /// Completes the multipart upload (or PUTs the bytes, when they are less than a part) with the part the writer
        /// was filling as the last one, commits the object as the file, then writes the state once; a small upload's
        /// bytes go into the file's record instead (nothing to complete), and where they all came in this append the
        /// record is the only write (see <see cref="CommitPublishedAsync"/>). Every byte
        /// has arrived, so this runs to its end whatever happens to the request: a client that leaves after its
        /// last byte does not lose its chunk.
        /// </summary>
        public async Task<TusUploadInfo> CommitAsync(PartUploader uploader, TusUploadInfo info, string? sha256)
        {
            if (uploader.TakeSmallContent() is { } content)
            {
                // A small file: its bytes go into its record, nothing is completed. Should that fail, the state is
                // still the previous one, and the client sends the chunk again.
                return await CommitPublishedAsync(info, sha256 ?? Convert.ToHexStringLower(SHA256.HashData(content)), content, CancellationToken.None);
            }

            await CompleteAsync(uploader);
            try
            {
                return await CommitPublishedAsync(info, sha256, null, CancellationToken.None);
            }
            catch (Exception) when (!_state.Published)
            {
                // The bytes are one object now and the old state names a multipart upload that is gone: say so,
                // so that the next HEAD or PATCH commits them (a second state write, on this failure path only).
                try
                {
                    await SwitchStateAsync(Published(info));
                }
                catch (AmazonServiceException ex)
                {
                    store.LogDeleteFailed(ex, keys.StateKey); // the first failure is the one to report
                }

                throw;
            }
        }

        /// <summary>
        /// For an upload that reads complete but not committed (a failure or a crash in between): publishes its
        /// bytes if they are not yet, and commits them, unless the file's record names them already or the file
        /// has changed since they were published (a newer save or a delete wins).
        /// </summary>
        public override async Task CommitAsync(string? sha256, CancellationToken cancellationToken)
        {
            if (_state.Info.IsCommitted)
            {
                return;
            }

            await PublishBytesAsync(cancellationToken);
            var file = FileKey.Of(user, Info.FileName!);
            var record = await store.ReadRecordAsync(file, cancellationToken);
            var overtaken = record is not null && record.ContentId != Info.Id && record.CreatedAt > _state.PublishedAt;
            if (record?.ContentId == Info.Id || overtaken || !await store.ObjectExistsAsync(keys.BlobKey))
            {
                if (overtaken)
                {
                    await store.TryDeleteAsync(keys.BlobKey); // no record names it
                }

                Info = Info with { IsCommitted = true };
                await SwitchStateAsync(_state with { Info = Info });
            }
            else
            {
                Info = await CommitPublishedAsync(Info, sha256, null, cancellationToken);
            }
        }

        public override Task TerminateAsync(CancellationToken cancellationToken) => store.DeleteUploadObjectsAsync(keys.Prefix, UserKey(user), _state);

        /// <summary>Turns the received parts and tail into the object at the blob key (once; it stays published).</summary>
        public async Task PublishBytesAsync(CancellationToken cancellationToken)
        {
            if (_state.Published)
            {
                return;
            }

            await using (var uploader = await ResumeAsync(cancellationToken))
            {
                await CompleteAsync(uploader);
            }

            await SwitchStateAsync(Published(_state.Info));
        }

        /// <summary>
        /// Completes the uploader's object. When the store's answer is an error but the object is there, the
        /// completion landed (its answer was lost, or a crash came before the state said so): it counts.
        /// </summary>
        private async Task CompleteAsync(PartUploader uploader)
        {
            try
            {
                await uploader.CompleteAsync(CancellationToken.None);
            }
            catch (AmazonServiceException)
            {
                if (!await store.ObjectExistsAsync(keys.BlobKey))
                {
                    throw;
                }
            }
        }

        /// <summary>
        /// Commits the bytes at the blob key, or <paramref name="content"/> (a small file's, kept in its record), then writes
        /// the state, committed; unless every byte of a small upload came in this append: then its record alone says it is
        /// committed (<see cref="FileRecord.CompletesUpload"/>), and its state stays as its creation wrote it.
        /// </summary>
        private async Task<TusUploadInfo> CommitPublishedAsync(TusUploadInfo info, string? sha256, byte[]? content, CancellationToken cancellationToken)
        {
            if (sha256 is null)
            {
                await using var bytes = new RangedObjectStream(store._s3, store._options.Bucket, keys.BlobKey, info.Offset);
                (_, sha256) = await HashingCopy.CopyAsync(bytes, Stream.Null, long.MaxValue, cancellationToken);
            }

            // The upload's id is the blob's content id: a commit repeated after a crash commits the same blob.
            var record = new FileRecord(info.FileName!, info.Offset, sha256, info.ContentType!, store.Time.GetUtcNow(), info.Id)
            {
                Content = content,
                CompletesUpload = content is not null && _state.MayBeCompletedByRecord,
            };
            await store.CommitAsync(FileKey.Of(user, info.FileName!), new PublishedBlob(), record, cancellationToken);
            if (record.CompletesUpload)
            {
                // As a later request will read it: the creation's state (its expiry too), committed by the record.
                _state = _state.CompletedBy(record);
                store.Remember(keys, _state); // out of memory: a later request reads the state and the record
            }
            else
            {
                await SwitchStateAsync(Published(info with { IsCommitted = true }));
            }

            return _state.Info;
        }

        private UploadState Published(TusUploadInfo info) => _state.PublishedAs(info, store.Time.GetUtcNow());

        /// <summary>Writes the new state, then drops the tail the previous one named (unless it still names it).</summary>
        private async Task SwitchStateAsync(UploadState next)
        {
            await store.WriteStateAsync(keys, next, CancellationToken.None);
            var previousTail = _state.TailKey;
            _state = next;
            if (previousTail is not null && previousTail != next.TailKey)
            {
                await store.TryDeleteAsync(previousTail);
            }
        }
    }

    private sealed class Writer(Upload upload, PartUploader uploader) : UploadWriter
    {
        public override Stream Destination => uploader;

        public override long Position => uploader.Written;

        public override Task<TusUploadInfo> PersistAsync(TusUploadInfo info) => upload.PersistAsync(uploader, info);

        /// <summary>Nothing of this append is in the state: parts it uploaded are replaced when their numbers are sent again.</summary>
        public override Task DiscardAsync() => Task.CompletedTask;

        public override Task<TusUploadInfo> CommitAsync(TusUploadInfo info, string? sha256) => upload.CommitAsync(uploader, info, sha256);

        public override ValueTask DisposeAsync() => uploader.DisposeAsync();
    }
}

/// <summary>One uploaded part of an unfinished upload.</summary>
internal sealed record UploadedPart(int Number, string ETag);

/// <summary>
/// The persisted state of one upload in the bucket: the tus state, where its bytes go, and how far they got
/// (full parts of <see cref="MultipartId"/>, then <see cref="TailLength"/> bytes in <see cref="TailKey"/>), or
/// <see cref="Published"/> once they are one object at <see cref="BlobKey"/> (since <see cref="PublishedAt"/>, where
/// that happened apart from the commit).
/// </summary>
internal sealed record UploadState(
    TusUploadInfo Info,
    string BlobKey,
    string? MultipartId,
    List<UploadedPart> Parts,
    string? TailKey,
    long TailLength,
    bool Published,
    DateTimeOffset? PublishedAt = null)
{
    /// <summary>
    /// A small upload (<see cref="S3FileStore.SmallFileBytes"/>, a file's, its length known) with no bytes stored and not
    /// committed by this state: the append that brings all its bytes at once commits it by writing its file's record
    /// (<see cref="FileRecord.CompletesUpload"/>) and not this state, so this may be older than the upload.
    /// </summary>
    [JsonIgnore]
    public bool MayBeCompletedByRecord => !Published && !Info.IsCommitted && TailKey is null
        && Info is { IsPartial: false, PartialIds: null, FileName: not null, Length: <= S3FileStore.SmallFileBytes };

    /// <summary>This state with <paramref name="info"/>, its bytes one object at the blob key (or, once committed, a small file's record).</summary>
    public UploadState PublishedAs(TusUploadInfo info, DateTimeOffset now) => this with
    {
        Info = info, MultipartId = null, Parts = [], TailKey = null, TailLength = 0, Published = true, PublishedAt = PublishedAt ?? now,
    };

    /// <summary>This small upload's state once <paramref name="record"/>, its file's, committed it.</summary>
    public UploadState CompletedBy(FileRecord record) =>
        PublishedAs(Info with { Offset = Info.Length!.Value, IsCommitted = true }, record.CreatedAt);
}

// As TusUploadInfoJson: a state of another layout reads as unreadable, never half-understood.
[JsonSourceGenerationOptions(RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(UploadState))]
internal sealed partial class UploadStateJson : JsonSerializerContext;
