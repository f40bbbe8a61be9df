using System.Collections.Concurrent;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.IO;

namespace UploadService.Storage;

/// <summary>
/// Stores files in one bucket of an S3-compatible object store (Cloudflare R2 in production), laid out as
/// the filesystem store lays out its root, so that no client string ever becomes part of a key:
/// <code>
/// users/{sha256(userId)}/files/{sha256(name)}               the record (JSON): name, size, sha256, type, time, contentId (or the bytes)
/// users/{sha256(userId)}/blobs/{contentId}                 the bytes of one version, never overwritten
/// uploads/{sha256(userId)}/{uploadId}/...                   unfinished tus uploads (see S3FileStore.Tus.cs)
/// </code>
/// A save streams the body through the one hashing copy loop into memory, one part at a time
/// (<see cref="S3StoreOptions.PartSizeBytes"/>, equal parts except the last, as R2 requires); each full part is
/// uploaded as a part of a multipart upload while the next one fills, a body smaller than one part as a single
/// PUT, and a small file (<see cref="SmallFileBytes"/>) not as an object at all: its bytes go into its record.
/// Only when the bytes are complete is the record PUT (a single PUT is atomic in S3 and R2), and the
/// previous version's blob is deleted after that switch: readers see the old file or the new one, and a
/// failed save aborts its multipart upload and leaves the previous version untouched. Everything the
/// service needs lives in the bucket, so a container with an empty disk serves every file.
/// </summary>
public sealed partial class S3FileStore : FileStore, IDisposable
{
    private const int ListConcurrency = 8;

    /// <summary>Parts are held in blocks of this size: a small file takes one, a part gathers them as it fills.</summary>
    private const int PartBlockBytes = 128 * 1024;

    /// <summary>
    /// A file of at most this many bytes is kept in its record (base64 in the JSON) instead of a blob: saving it is one
    /// PUT, reading it one GET. A listing reads every record, so this stays small.
    /// </summary>
    internal const int SmallFileBytes = 8 * 1024;

    private readonly IAmazonS3 _s3;
    private readonly S3StoreOptions _options;

    // Parts in flight, in pooled blocks: as many free blocks are kept as one upload's two parts need.
    private readonly RecyclableMemoryStreamManager _partMemory;
    private long _partsInMemory;

    // Which names have a record, per user: one LIST when the user's first file is committed, then kept by this
    // process's own switches and deletes (one process owns a user's prefix: one container per user), so that a
    // save of a new name reads no previous record. Wrong only if another process wrote the prefix, and then a
    // replaced blob is left behind (reads always read the record), and a small tus upload that process completed by
    // its record alone is not marked committed before its record is replaced (see ReleaseRecordAsync).
    private readonly ConcurrentDictionary<string, Lazy<Task<ConcurrentDictionary<string, byte>>>> _recordNames = new(StringComparer.Ordinal);

    public S3FileStore(S3StoreOptions options, TimeProvider? time = null, ILogger<S3FileStore>? logger = null)
        : this(options.CreateClient(), options, time, logger)
    {
    }

    /// <summary>A store that sends its requests through <paramref name="s3"/> (configured as <see cref="S3StoreOptions.ClientConfig"/> says), which it disposes.</summary>
    public S3FileStore(IAmazonS3 s3, S3StoreOptions options, TimeProvider? time = null, ILogger<S3FileStore>? logger = null)
        : base(time, logger)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.PartSizeBytes, S3StoreOptions.MinPartSizeBytes);
        _options = options;
        _s3 = s3;
        _partMemory = new RecyclableMemoryStreamManager(new RecyclableMemoryStreamManager.Options
        {
            BlockSize = PartBlockBytes,
            MaximumSmallPoolFreeBytes = 2 * options.PartSizeBytes,
            MaximumLargePoolFreeBytes = options.PartSizeBytes,
        });
        _partMemory.StreamCreated += (_, _) => Interlocked.Increment(ref _partsInMemory);
        _partMemory.StreamDisposed += (_, _) => Interlocked.Decrement(ref _partsInMemory);
    }

    /// <summary>Everything lives in the bucket; there is no local state to ready.</summary>
    public override void Open()
    {
    }

    /// <summary>How many parts are held in memory right now (filling or in flight), for tests.</summary>
    internal long PartsInMemory => Interlocked.Read(ref _partsInMemory);

    /// <summary>Bytes of parts ever copied into one contiguous buffer, for tests: none expected (blocks are sent as they are).</summary>
    internal long PartBytesCopiedWhole => _partMemory.LargePoolInUseSize + _partMemory.LargePoolFreeSize;

    private RecyclableMemoryStream NewPart() => _partMemory.GetStream(nameof(PartUploader));

    public void Dispose() => _s3.Dispose();

    private protected override Task<FileRecord?> ReadRecordAsync(FileKey file, CancellationToken cancellationToken) =>
        ReadJsonAsync(RecordKey(file), FileRecordJson.Default.FileRecord, cancellationToken);

    private protected override async Task<FileRecord?> ReadReplacedRecordAsync(FileKey file) =>
        (await RecordNamesAsync(file.UserKey)).ContainsKey(file.NameKey) ? await ReadRecordAsync(file, CancellationToken.None) : null;

    /// <summary>Serialized only: the switch is one PUT (atomic in S3 and R2).</summary>
    private protected override Task<PendingRecord> StageRecordAsync(FileKey file, FileRecord record) =>
        Task.FromResult<PendingRecord>(new RecordPut(this, file, JsonSerializer.Serialize(record, FileRecordJson.Default.FileRecord)));

    private protected override async Task DeleteRecordAsync(FileKey file, CancellationToken cancellationToken)
    {
        await _s3.DeleteObjectAsync(_options.Bucket, RecordKey(file), cancellationToken);
        // Only a list already made is updated (a name wrongly present costs one read later; a list made now
        // would not have it anyway).
        if (_recordNames.TryGetValue(file.UserKey, out var names) && names.IsValueCreated && names.Value.IsCompletedSuccessfully)
        {
            names.Value.Result.TryRemove(file.NameKey, out _);
        }
    }

    /// <summary>The names (keys) of the user's records, listed once and kept up to date by this process.</summary>
    private async Task<ConcurrentDictionary<string, byte>> RecordNamesAsync(string userKey)
    {
        var names = _recordNames.GetOrAdd(userKey, key => new Lazy<Task<ConcurrentDictionary<string, byte>>>(() => ListRecordNamesAsync(key)));
        try
        {
            return await names.Value;
        }
        catch
        {
            _recordNames.TryRemove(new KeyValuePair<string, Lazy<Task<ConcurrentDictionary<string, byte>>>>(userKey, names)); // the next call lists again
            throw;
        }
    }

    private async Task<ConcurrentDictionary<string, byte>> ListRecordNamesAsync(string userKey)
    {
        var names = new ConcurrentDictionary<string, byte>(StringComparer.Ordinal);
        await foreach (var entry in ListObjectsAsync(UserPrefix(userKey) + "files/", CancellationToken.None))
        {
            names.TryAdd(entry.Key[(entry.Key.LastIndexOf('/') + 1)..], 0);
        }

        return names;
    }

    /// <summary>Every record; a small file's bytes are dropped as its record is read (a listing does not need them).</summary>
    private protected override async IAsyncEnumerable<FileRecord> ReadRecordsAsync(
        string userKey, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var records = new ConcurrentQueue<FileRecord>();
        await ReadEachRecordAsync(userKey, record => records.Enqueue(record with { Content = null }), cancellationToken);
        foreach (var record in records)
        {
            yield return record;
        }
    }

    /// <summary>Reads every readable record of the user, <see cref="ListConcurrency"/> at a time, handing each to <paramref name="read"/> (from any thread).</summary>
    private async Task ReadEachRecordAsync(string userKey, Action<FileRecord> read, CancellationToken cancellationToken)
    {
        var keys = new List<string>();
        await foreach (var entry in ListObjectsAsync(UserPrefix(userKey) + "files/", cancellationToken))
        {
            keys.Add(entry.Key);
        }

        await Parallel.ForEachAsync(
            keys,
            new ParallelOptions { MaxDegreeOfParallelism = ListConcurrency, CancellationToken = cancellationToken },
            async (key, token) =>
            {
                if (await ReadJsonAsync(key, FileRecordJson.Default.FileRecord, token) is { } record)
                {
                    read(record);
                }
            });
    }

    /// <summary>A multipart upload to the blob's key (a single PUT when the bytes fit in one part; none when they fit in the record).</summary>
    private protected override Task<PendingBlob> CreateBlobAsync(FileKey file, string contentId, CancellationToken cancellationToken) =>
        Task.FromResult<PendingBlob>(new BlobUpload(this, file, contentId, new PartUploader(this, BlobKey(file.UserKey, contentId))));

    private protected override Stream? OpenBlob(FileKey file, FileRecord record) =>
        record.Content is { } content
            ? new MemoryStream(content, writable: false)
            : new RangedObjectStream(_s3, _options.Bucket, BlobKey(file.UserKey, record.ContentId), record.Size);

    private protected override Task DeleteBlobAsync(FileKey file, FileRecord record) =>
        record.Content is null ? TryDeleteAsync(BlobKey(file.UserKey, record.ContentId)) : Task.CompletedTask;

    /// <summary>
    /// Blob sizes come with the listing; small files are in their records, which are read for it (one GET each, as a
    /// listing reads them): only where a quota is set, when a user is first seen after a start and again before the
    /// quota refuses a write.
    /// </summary>
    private protected override async Task<long> FileBytesAsync(string userKey, CancellationToken cancellationToken)
    {
        long total = 0;
        await foreach (var entry in ListObjectsAsync(UserPrefix(userKey) + "blobs/", cancellationToken))
        {
            total += entry.Size ?? 0;
        }

        await ReadEachRecordAsync(userKey, record =>
        {
            if (record.Content is not null)
            {
                Interlocked.Add(ref total, record.Size);
            }
        }, cancellationToken);
        return total;
    }

    /// <summary>A JSON object of the store (a file record, an upload state); null when absent or unreadable.</summary>
    private async Task<T?> ReadJsonAsync<T>(string key, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken) where T : class
    {
        try
        {
            using var response = await _s3.GetObjectAsync(_options.Bucket, key, cancellationToken);
            return await JsonSerializer.DeserializeAsync(response.ResponseStream, typeInfo, cancellationToken);
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (JsonException ex)
        {
            LogUnreadableRecord(ex, key);
            return null;
        }
    }

    private Task WriteJsonAsync<T>(string key, T value, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken) =>
        PutJsonAsync(key, JsonSerializer.Serialize(value, typeInfo), cancellationToken);

    private Task PutJsonAsync(string key, string json, CancellationToken cancellationToken) =>
        _s3.PutObjectAsync(new PutObjectRequest
        {
            BucketName = _options.Bucket,
            Key = key,
            ContentBody = json,
            ContentType = "application/json",
            UseChunkEncoding = false,
        }, cancellationToken);

    /// <summary>Every object under <paramref name="prefix"/>, page by page.</summary>
    private async IAsyncEnumerable<S3Object> ListObjectsAsync(
        string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var request = new ListObjectsV2Request { BucketName = _options.Bucket, Prefix = prefix };
        do
        {
            var page = await _s3.ListObjectsV2Async(request, cancellationToken);
            foreach (var entry in page.S3Objects ?? [])
            {
                yield return entry;
            }

            request.ContinuationToken = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (request.ContinuationToken is not null);
    }

    private async Task<bool> ObjectExistsAsync(string key)
    {
        try
        {
            await _s3.GetObjectMetadataAsync(_options.Bucket, key, CancellationToken.None);
            return true;
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    private async Task TryDeleteAsync(string key)
    {
        try
        {
            await _s3.DeleteObjectAsync(_options.Bucket, key, CancellationToken.None);
        }
        catch (AmazonServiceException ex)
        {
            LogDeleteFailed(ex, key);
        }
    }

    private static string UserPrefix(string userKey) => "users/" + userKey + "/";

    private static string RecordKey(FileKey file) => UserPrefix(file.UserKey) + "files/" + file.NameKey;

    // Content ids are fresh GUIDs (or a tus upload's id), so a blob key is never reused.
    private static string BlobKey(string userKey, string contentId) => UserPrefix(userKey) + "blobs/" + contentId;

    private sealed class RecordPut(S3FileStore store, FileKey file, string json) : PendingRecord
    {
        public override async Task SwitchAsync()
        {
            // Present before the PUT: a PUT whose answer is lost may have landed, and a name wrongly present
            // costs one read later, where one wrongly absent would leave its replaced blob behind.
            (await store.RecordNamesAsync(file.UserKey)).TryAdd(file.NameKey, 0);
            await store.PutJsonAsync(RecordKey(file), json, CancellationToken.None);
        }

        public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>
    /// A save's bytes: published by completing the upload, or kept in the record when they are few
    /// (<see cref="PartUploader.TakeSmallContent"/>); a failed switch deletes the new blob, unless the record
    /// names it after all (a record PUT whose answer was lost may have landed).
    /// </summary>
    private sealed class BlobUpload(S3FileStore store, FileKey file, string contentId, PartUploader uploader) : PendingBlob
    {
        private bool _inRecord;

        public override Stream Destination => uploader;

        public override byte[]? TakeSmallContent()
        {
            var content = uploader.TakeSmallContent();
            _inRecord = content is not null;
            return content;
        }

        public override Task PublishAsync(CancellationToken cancellationToken) =>
            _inRecord ? Task.CompletedTask : uploader.CompleteAsync(cancellationToken);

        public override async Task RetractAsync()
        {
            if (!_inRecord && (await store.ReadRecordAsync(file, CancellationToken.None))?.ContentId != contentId)
            {
                await store.TryDeleteAsync(uploader.Key);
            }
        }

        public override ValueTask DisposeAsync() => uploader.DisposeAsync();
    }

    /// <summary>A tus upload's bytes, one object already: nothing to publish, and they stay when the switch fails (the upload retries).</summary>
    private sealed class PublishedBlob : PendingBlob
    {
        public override Stream Destination => throw new InvalidOperationException("These bytes are written already.");

        public override Task PublishAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override Task RetractAsync() => Task.CompletedTask;

        public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
