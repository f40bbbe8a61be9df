using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using UploadService.Security;

namespace UploadService.Storage;

/// <summary>
/// Resumable uploads in the bucket, so that a container with an empty disk resumes every one of them:
/// <code>
/// uploads/{sha256(userId)}/{id}/state          the state (JSON): the tus record, the multipart upload, its parts, the tail
/// uploads/{sha256(userId)}/{id}/tail.{guid}    the bytes past the last full part (less than one part)
/// users/{sha256(userId)}/blobs/{id}            the multipart upload's target: the file's bytes once complete
/// </code>
/// Each full part of the upload is a part of one multipart upload; what is left of a chunk (less than a
/// part) is kept as a tail object, under a new key each time. An append streams the tail and the chunk
/// through a local scratch file of at most one part, uploads every part that fills, puts the new tail, and
/// only then replaces the state: the persisted offset never covers bytes that are not in the bucket, and
/// a crash before the state switch leaves the previous state, whose parts and tail are untouched (a
/// re-sent part of the same number replaces the orphaned one). Completion finishes the multipart upload
/// (the tail becomes the short last part) and commits its object as the file, without a copy; its SHA-256
/// is the one the appends computed (<see cref="RunningHashes"/>), or read back where this process did not
/// see every byte.
/// </summary>
public sealed partial class S3FileStore : IUploadStore
{
    private const string UploadsPrefix = "uploads/";

    private readonly RunningHashes _runningHashes = new();

    public async Task<UploadRecord> CreateUploadAsync(UserId user, UploadRecord upload, CancellationToken cancellationToken)
    {
        var keys = LocateUpload(user, upload.Id);
        await WriteStateAsync(keys, new UploadState(upload, keys.BlobKey, null, [], null, 0, false), cancellationToken);
        return upload;
    }

    public async Task<UploadRecord?> GetUploadAsync(UserId user, string id, CancellationToken cancellationToken) =>
        (await ReadStateAsync(LocateUpload(user, id).StateKey, cancellationToken))?.Record;

    public async Task<UploadRecord> AppendAsync(
        UserId user, UploadRecord upload, Stream content, long maxBytes, ChunkChecksum? checksum,
        DateTimeOffset expiresAt, CancellationToken cancellationToken)
    {
        var keys = LocateUpload(user, upload.Id);
        var state = await ReadStateAsync(keys.StateKey, cancellationToken)
            ?? throw new InvalidOperationException($"Upload {upload.Id} has no state.");
        using var checksumHash = checksum?.CreateHash();
        await using var writer = await ResumeAsync(keys, state, cancellationToken);
        var running = _runningHashes.Take(upload);
        try
        {
            await HashingCopy.CopyAsync(content, writer, maxBytes, [running?.Hash, checksumHash], cancellationToken);
        }
        catch (Exception ex) when (checksum is null && writer.Written > upload.Offset && HashingCopy.KeepsWhatArrived(ex))
        {
            // The connection broke (or the chunk ran past the limit, which the copy never writes): keep what
            // arrived, as tus intends. A spent quota or a full scratch disk discards the chunk: nothing persisted.
            running?.Dispose();
            await PersistAsync(keys, state, writer, upload with { Offset = writer.Written, ExpiresAt = expiresAt });
            throw;
        }
        catch (Exception)
        {
            running?.Dispose();
            throw;
        }

        if (checksum is not null && !checksumHash!.GetHashAndReset().AsSpan().SequenceEqual(checksum.Expected))
        {
            running?.Dispose();
            throw new ChecksumMismatchException(checksum.Algorithm); // nothing persisted: the chunk is discarded
        }

        UploadRecord appended;
        try
        {
            appended = await PersistAsync(keys, state, writer, upload with { Offset = writer.Written, ExpiresAt = expiresAt });
        }
        catch (Exception)
        {
            running?.Dispose();
            throw;
        }

        if (running is not null)
        {
            _runningHashes.Keep(upload.Id, running, appended.Offset);
        }

        return appended;
    }

    public async Task<UploadRecord> UpdateUploadAsync(UserId user, UploadRecord upload, CancellationToken cancellationToken)
    {
        var keys = LocateUpload(user, upload.Id);
        var state = await ReadStateAsync(keys.StateKey, cancellationToken)
            ?? throw new InvalidOperationException($"Upload {upload.Id} has no state.");
        await WriteStateAsync(keys, state with { Record = upload }, cancellationToken);
        return upload;
    }

    public async Task<(UploadRecord Upload, StoredFile? File)> CompleteUploadAsync(
        UserId user, UploadRecord upload, FileName file, string contentType, CancellationToken cancellationToken)
    {
        var keys = LocateUpload(user, upload.Id);
        var state = await FinishBytesAsync(keys, cancellationToken);
        var sha256 = _runningHashes.Finish(upload);
        if (sha256 is null)
        {
            await using var bytes = new RangedObjectStream(_s3, _options.Bucket, keys.BlobKey, upload.Offset);
            (_, sha256) = await HashingCopy.CopyAsync(bytes, Stream.Null, long.MaxValue, cancellationToken);
        }

        // The upload's id is the blob's content id: a completion repeated after a crash commits the same blob.
        var stored = await CommitAsync(FileKey.Of(user, file), new PublishedBlob(),
            new FileRecord(file.Value, upload.Offset, sha256, contentType, Time.GetUtcNow(), upload.Id), cancellationToken);
        var completed = upload with { FileName = stored.Name, ContentId = upload.Id };
        await WriteStateAsync(keys, state with { Record = completed }, CancellationToken.None);
        return (completed, stored);
    }

    public async Task<(UploadRecord Upload, StoredFile? File)> ConcatenateAsync(
        UserId user, UploadRecord final, IReadOnlyList<UploadRecord> partials, FileName file, string contentType,
        long maxBytes, CancellationToken cancellationToken)
    {
        var sources = new List<(string Key, long Length)>();
        foreach (var partial in partials)
        {
            var keys = LocateUpload(user, partial.Id);
            await FinishBytesAsync(keys, cancellationToken);
            sources.Add((keys.BlobKey, partial.Offset));
        }

        // Partials have any sizes, but R2 wants equal parts: the bytes go through the service once, as a save.
        StoredFile stored;
        await using (var concatenation = new SequentialStream(sources.Select(source =>
            (Func<Stream>)(() => new RangedObjectStream(_s3, _options.Bucket, source.Key, source.Length)))))
        {
            stored = await SaveAsync(user, file, concatenation, contentType, maxBytes, cancellationToken);
        }

        var finalKeys = LocateUpload(user, final.Id);
        var completed = final with { Offset = final.Length!.Value, FileName = stored.Name };
        await WriteStateAsync(finalKeys, new UploadState(completed, finalKeys.BlobKey, null, [], null, 0, true), CancellationToken.None);
        foreach (var partial in partials)
        {
            await DeleteUploadAsync(user, partial.Id, CancellationToken.None);
        }

        return (completed, stored);
    }

    public async Task<bool> DeleteUploadAsync(UserId user, string id, CancellationToken cancellationToken)
    {
        var keys = LocateUpload(user, id);
        _runningHashes.Drop(id);
        var state = await ReadStateAsync(keys.StateKey, cancellationToken);
        if (state is null)
        {
            return false;
        }

        await DeleteUploadObjectsAsync(keys.Prefix, state);
        return true;
    }

    public async Task<int> DeleteExpiredUploadsAsync(DateTimeOffset now, Func<string, IDisposable?> tryLock, CancellationToken cancellationToken)
    {
        var removed = 0;
        await foreach (var entry in ListObjectsAsync(UploadsPrefix, cancellationToken))
        {
            if (!entry.Key.EndsWith("/state", StringComparison.Ordinal))
            {
                continue;
            }

            var state = await ReadStateAsync(entry.Key, cancellationToken);
            if (state is null || !state.Record.IsExpired(now))
            {
                continue;
            }

            using var held = tryLock(state.Record.Id);
            if (held is null)
            {
                continue; // being written right now; its request ends (and extends the expiry) or a later sweep gets it
            }

            _runningHashes.Drop(state.Record.Id);
            await DeleteUploadObjectsAsync(entry.Key[..^"state".Length], state);
            removed++;
        }

        return removed;
    }

    /// <summary>Unfinished uploads count their persisted offset from their state (their parts are not objects yet).</summary>
    private protected override async Task<long> UnfinishedUploadBytesAsync(string userKey, CancellationToken cancellationToken)
    {
        long total = 0;
        await foreach (var entry in ListObjectsAsync(UploadsPrefix + userKey + "/", cancellationToken))
        {
            if (entry.Key.EndsWith("/state", StringComparison.Ordinal)
                && await ReadStateAsync(entry.Key, cancellationToken) is { BytesFinished: false, Record.FileName: null } state)
            {
                total += state.Record.Offset;
            }
        }

        return total;
    }

    /// <summary>A writer that continues the upload where its state ends: its multipart upload, parts and tail.</summary>
    private async Task<PartUploader> ResumeAsync(UploadKeys keys, UploadState state, CancellationToken cancellationToken)
    {
        var writer = new PartUploader(this, keys.BlobKey, state.MultipartId,
            state.Parts.Select(part => new PartETag(part.Number, part.ETag)));
        try
        {
            if (state.TailKey is not null && state.TailLength > 0)
            {
                await writer.PrefillAsync(state.TailKey, cancellationToken);
            }

            return writer;
        }
        catch
        {
            await writer.DisposeAsync();
            throw;
        }
    }

    /// <summary>Puts the new tail, then switches the state to it (the one atomic step), then drops the old tail.</summary>
    private async Task<UploadRecord> PersistAsync(UploadKeys keys, UploadState state, PartUploader writer, UploadRecord record)
    {
        var tailKey = keys.Prefix + "tail." + Guid.NewGuid().ToString("N");
        var tailLength = await writer.PutTailAsync(tailKey);
        await WriteStateAsync(keys, state with
        {
            Record = record,
            MultipartId = writer.UploadId,
            Parts = writer.Parts.Select(part => new UploadedPart(part.PartNumber!.Value, part.ETag)).ToList(),
            TailKey = tailLength > 0 ? tailKey : null,
            TailLength = tailLength,
        }, CancellationToken.None);
        if (state.TailKey is not null)
        {
            await TryDeleteAsync(state.TailKey);
        }

        return record;
    }

    /// <summary>Turns the received parts and tail into the object at the blob key (once; repeated calls find it done).</summary>
    private async Task<UploadState> FinishBytesAsync(UploadKeys keys, CancellationToken cancellationToken)
    {
        var state = await ReadStateAsync(keys.StateKey, cancellationToken)
            ?? throw new InvalidOperationException($"Upload at {keys.Prefix} has no state.");
        if (state.BytesFinished)
        {
            return state;
        }

        await using (var writer = await ResumeAsync(keys, state, cancellationToken))
        {
            await writer.CompleteAsync(cancellationToken);
        }

        var finished = state with { MultipartId = null, Parts = [], TailKey = null, TailLength = 0, BytesFinished = true };
        await WriteStateAsync(keys, finished, CancellationToken.None);
        if (state.TailKey is not null)
        {
            await TryDeleteAsync(state.TailKey);
        }

        return finished;
    }

    /// <summary>Removes the state, tails and multipart upload; the bytes too unless they became a file.</summary>
    private async Task DeleteUploadObjectsAsync(string prefix, UploadState state)
    {
        if (state.MultipartId is not null)
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

        if (state.BytesFinished && state.Record.FileName is null)
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

    private static UploadKeys LocateUpload(UserId user, string id)
    {
        // Ids are generated by the service (hex); checked here too because they arrive in URLs.
        if (id.Length != 32 || !id.All(char.IsAsciiHexDigitLower))
        {
            throw new ArgumentException("Not an upload id.", nameof(id));
        }

        var prefix = UploadsPrefix + UserKey(user) + "/" + id + "/";
        return new UploadKeys(prefix, BlobKey(UserKey(user), id));
    }

    private Task WriteStateAsync(UploadKeys keys, UploadState state, CancellationToken cancellationToken) =>
        WriteJsonAsync(keys.StateKey, state, UploadStateJson.Default.UploadState, cancellationToken);

    private Task<UploadState?> ReadStateAsync(string key, CancellationToken cancellationToken) =>
        ReadJsonAsync(key, UploadStateJson.Default.UploadState, cancellationToken);

    private sealed record UploadKeys(string Prefix, string BlobKey)
    {
        public string StateKey => Prefix + "state";
    }
}

/// <summary>One uploaded part of an unfinished upload.</summary>
internal sealed record UploadedPart(int Number, string ETag);

/// <summary>
/// The persisted state of one upload in the bucket: the tus record, where its bytes go, and how far they got
/// (full parts of <see cref="MultipartId"/>, then <see cref="TailLength"/> bytes in <see cref="TailKey"/>), or
/// <see cref="BytesFinished"/> once they are one object at <see cref="BlobKey"/>.
/// </summary>
internal sealed record UploadState(
    UploadRecord Record,
    string BlobKey,
    string? MultipartId,
    List<UploadedPart> Parts,
    string? TailKey,
    long TailLength,
    bool BytesFinished);

[JsonSerializable(typeof(UploadState))]
internal sealed partial class UploadStateJson : JsonSerializerContext;
