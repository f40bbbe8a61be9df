using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.Extensions.Logging.Abstractions;
using UploadService.Security;

namespace UploadService.Storage;

/// <summary>
/// Stores files in one bucket of an S3-compatible object store (Cloudflare R2 in production), laid out as
/// the filesystem store lays out its root, so that no client string ever becomes part of a key:
/// <code>
/// users/{sha256(userId)}/files/{sha256(name)}               the record (JSON): name, size, sha256, type, time, contentId
/// users/{sha256(userId)}/blobs/{contentId}                 the bytes of one version, never overwritten
/// uploads/{sha256(userId)}/{uploadId}/...                   unfinished tus uploads (see S3FileStore.Uploads.cs)
/// </code>
/// A save streams the body through the one hashing copy loop into a local scratch file of at most one
/// part (<see cref="S3StoreOptions.PartSizeBytes"/>, equal parts except the last, as R2 requires); each
/// full part is uploaded as a part of a multipart upload, a body smaller than one part as a single PUT.
/// Only when the bytes are complete is the record PUT (a single PUT is atomic in S3 and R2), and the
/// previous version's blob is deleted after that switch: readers see the old file or the new one, and a
/// failed save aborts its multipart upload and leaves the previous version untouched. Everything the
/// service needs lives in the bucket, so a container with an empty disk serves every file.
/// </summary>
public sealed partial class S3FileStore : IFileStore, IDisposable
{
    private const int ListConcurrency = 8;
    private const int GateCount = 64;

    private readonly IAmazonS3 _s3;
    private readonly S3StoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    // Serializes the record switch (save commit, delete) per name, as the filesystem store does; bytes
    // stream outside it. One process serves one user's files (one container per user), so an in-process
    // gate is enough to keep concurrent saves from orphaning each other's blobs.
    private readonly SemaphoreSlim[] _gates =
        Enumerable.Range(0, GateCount).Select(_ => new SemaphoreSlim(1, 1)).ToArray();

    public S3FileStore(S3StoreOptions options, TimeProvider? time = null, ILogger<S3FileStore>? logger = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.PartSizeBytes, S3StoreOptions.MinPartSizeBytes);
        _options = options;
        _s3 = CreateClient(options);
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger<S3FileStore>.Instance;
        Directory.CreateDirectory(options.ScratchDirectory);
        // One process owns its scratch folder: what is there is left from a previous run's parts in flight.
        foreach (var stale in Directory.EnumerateFiles(options.ScratchDirectory, "*.part"))
        {
            File.Delete(stale);
        }
    }

    /// <summary>
    /// The SDK settings an S3-compatible endpoint (R2) needs. SDK v4 defaults to computing a CRC32
    /// checksum for every upload and sending it as an aws-chunked trailer, and to validating response
    /// checksums: R2 rejects some of those trailers and headers, so checksums are calculated and validated
    /// only when an operation requires them. Bodies are sent with a plain signed payload (never
    /// aws-chunked), path-style addressing (<c>{endpoint}/{bucket}/{key}</c>), and the region signed
    /// into requests is the configured one (<c>auto</c> for R2).
    /// </summary>
    public static AmazonS3Client CreateClient(S3StoreOptions options) =>
        new(new BasicAWSCredentials(options.AccessKeyId, options.SecretAccessKey), new AmazonS3Config
        {
            ServiceURL = options.ServiceUrl,
            AuthenticationRegion = options.Region,
            ForcePathStyle = true,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        });

    public async Task<StoredFile> SaveAsync(
        UserId user, FileName name, Stream content, string contentType, long maxBytes, CancellationToken cancellationToken)
    {
        var location = Locate(user, name);
        var contentId = Guid.NewGuid().ToString("N");
        long size;
        string sha256;
        await using (var upload = new PartUploader(this, location.BlobKey(contentId)))
        {
            (size, sha256) = await HashingCopy.CopyAsync(content, upload, maxBytes, cancellationToken);
            await upload.CompleteAsync(cancellationToken);
        }

        var record = new FileRecord(name.Value, size, sha256, contentType, _time.GetUtcNow(), contentId);
        try
        {
            return await CommitAsync(location, record, cancellationToken);
        }
        catch
        {
            await TryDeleteAsync(location.BlobKey(contentId));
            throw;
        }
    }

    /// <summary>Switches the record to <paramref name="record"/> (one PUT), then deletes the previous version's blob.</summary>
    private async Task<StoredFile> CommitAsync(Location location, FileRecord record, CancellationToken cancellationToken)
    {
        FileRecord? previous;
        var gate = GateFor(location);
        await gate.WaitAsync(cancellationToken);
        try
        {
            // Once the bytes are up, the switch is not abandoned halfway.
            previous = await ReadRecordAsync(location.RecordKey, CancellationToken.None);
            await WriteJsonAsync(location.RecordKey, record, FileRecordJson.Default.FileRecord, CancellationToken.None);
        }
        finally
        {
            gate.Release();
        }

        if (previous is not null && previous.ContentId != record.ContentId)
        {
            await TryDeleteAsync(location.BlobKey(previous.ContentId));
        }

        return record.ToStoredFile();
    }

    public async Task<FileContent?> OpenReadAsync(UserId user, FileName name, CancellationToken cancellationToken)
    {
        var location = Locate(user, name);
        var record = await ReadRecordAsync(location.RecordKey, cancellationToken);
        return record is null
            ? null
            : new FileContent(record.ToStoredFile(), new RangedObjectStream(_s3, _options.Bucket, location.BlobKey(record.ContentId), record.Size));
    }

    public async Task<bool> DeleteAsync(UserId user, FileName name, CancellationToken cancellationToken)
    {
        var location = Locate(user, name);
        FileRecord? record;
        var gate = GateFor(location);
        await gate.WaitAsync(cancellationToken);
        try
        {
            record = await ReadRecordAsync(location.RecordKey, cancellationToken);
            if (record is null)
            {
                return false;
            }

            await _s3.DeleteObjectAsync(_options.Bucket, location.RecordKey, cancellationToken);
        }
        finally
        {
            gate.Release();
        }

        await TryDeleteAsync(location.BlobKey(record.ContentId));
        return true;
    }

    public async Task<FileListing> ListAsync(
        UserId user, string prefix, int limit, string? startAfter, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        // Keys are hashes, so the bucket cannot filter or sort by name: every record of the user is read,
        // as the filesystem store reads every record file. Fine for one user's files; a per-user index
        // object would make this one GET.
        var keys = new List<string>();
        await foreach (var entry in ListObjectsAsync(UserPrefix(user) + "files/", cancellationToken))
        {
            keys.Add(entry.Key);
        }

        var records = new FileRecord?[keys.Count];
        await Parallel.ForEachAsync(
            Enumerable.Range(0, keys.Count),
            new ParallelOptions { MaxDegreeOfParallelism = ListConcurrency, CancellationToken = cancellationToken },
            async (index, token) => records[index] = await ReadRecordAsync(keys[index], token));

        var matches = records
            .OfType<FileRecord>()
            .Where(record => record.Name.StartsWith(prefix, StringComparison.Ordinal)
                && (startAfter is null || string.CompareOrdinal(record.Name, startAfter) > 0))
            .Select(record => record.ToStoredFile())
            .ToList();
        matches.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        if (matches.Count <= limit)
        {
            return new FileListing(matches, null);
        }

        var result = matches.GetRange(0, limit);
        return new FileListing(result, result[^1].Name);
    }

    public void Dispose() => _s3.Dispose();

    private Task<FileRecord?> ReadRecordAsync(string key, CancellationToken cancellationToken) =>
        ReadJsonAsync(key, FileRecordJson.Default.FileRecord, cancellationToken);

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

    private async Task WriteJsonAsync<T>(string key, T value, JsonTypeInfo<T> typeInfo, CancellationToken cancellationToken) =>
        await _s3.PutObjectAsync(new PutObjectRequest
        {
            BucketName = _options.Bucket,
            Key = key,
            ContentBody = JsonSerializer.Serialize(value, typeInfo),
            ContentType = "application/json",
            UseChunkEncoding = false,
        }, cancellationToken);

    /// <summary>Every object under <paramref name="prefix"/>, page by page.</summary>
    private async IAsyncEnumerable<S3Object> ListObjectsAsync(
        string prefix, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
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

    private SemaphoreSlim GateFor(Location location) =>
        _gates[(uint)HashCode.Combine(location.UserPrefix, location.NameKey) % GateCount];

    private static string UserPrefix(UserId user) => "users/" + HexSha256(user.Value) + "/";

    private static Location Locate(UserId user, FileName name) => new(UserPrefix(user), HexSha256(name.Value));

    private static string HexSha256(string value) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)));

    [LoggerMessage(Level = LogLevel.Warning, Message = "Unreadable file record {Key} ignored")]
    private partial void LogUnreadableRecord(Exception exception, string key);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not delete object {Key}")]
    private partial void LogDeleteFailed(Exception exception, string key);

    private sealed record Location(string UserPrefix, string NameKey)
    {
        public string RecordKey => UserPrefix + "files/" + NameKey;

        // Content ids are fresh GUIDs (or a tus upload's id), so a blob key is never reused.
        public string BlobKey(string contentId) => UserPrefix + "blobs/" + contentId;
    }

    /// <summary>
    /// The destination of the hashing copy: stages bytes in a scratch file of at most one part and uploads
    /// each full part of the multipart upload to <paramref name="key"/>; <see cref="CompleteAsync"/> sends the
    /// rest (a single PUT when there was no full part). A tus append continues a multipart upload
    /// (<paramref name="uploadId"/>, <paramref name="parts"/>) and keeps the unfinished part with
    /// <see cref="PutTailAsync"/> instead. Disposing without completing aborts a multipart upload that this
    /// instance started and removes the scratch file.
    /// </summary>
    private sealed class PartUploader(S3FileStore store, string key, string? uploadId = null, IEnumerable<PartETag>? parts = null) : Stream
    {
        private readonly string _scratchPath = Path.Combine(store._options.ScratchDirectory, Guid.NewGuid().ToString("N") + ".part");
        private readonly List<PartETag> _parts = parts?.ToList() ?? [];
        private readonly bool _continuing = uploadId is not null;
        private FileStream? _scratch;
        private string? _uploadId = uploadId;
        private bool _kept;

        private long PartSize => store._options.PartSizeBytes;

        public string? UploadId => _uploadId;

        public IReadOnlyList<PartETag> Parts => _parts;

        /// <summary>Bytes written so far, the uploaded parts included.</summary>
        public long Written => _parts.Count * PartSize + (_scratch?.Length ?? 0);

        /// <summary>Starts the scratch part with the bytes of an earlier, unfinished part (a tus upload's tail).</summary>
        public async Task PrefillAsync(string tailKey, CancellationToken cancellationToken)
        {
            using var response = await store._s3.GetObjectAsync(store._options.Bucket, tailKey, cancellationToken);
            _scratch ??= OpenScratch();
            await response.ResponseStream.CopyToAsync(_scratch, HashingCopy.BufferSize, cancellationToken);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (!buffer.IsEmpty)
            {
                _scratch ??= OpenScratch();
                var room = (int)Math.Min(buffer.Length, PartSize - _scratch.Length);
                await _scratch.WriteAsync(buffer[..room], cancellationToken);
                buffer = buffer[room..];
                if (_scratch.Length == PartSize)
                {
                    await UploadPartAsync(cancellationToken);
                }
            }
        }

        public async Task CompleteAsync(CancellationToken cancellationToken)
        {
            if (_uploadId is null)
            {
                await CloseScratchAsync();
                var request = new PutObjectRequest { BucketName = store._options.Bucket, Key = key, UseChunkEncoding = false };
                if (File.Exists(_scratchPath))
                {
                    request.FilePath = _scratchPath;
                }
                else
                {
                    request.InputStream = new MemoryStream();
                }

                await store._s3.PutObjectAsync(request, cancellationToken);
            }
            else
            {
                if (_scratch is { Length: > 0 })
                {
                    await UploadPartAsync(cancellationToken);
                }

                await store._s3.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
                {
                    BucketName = store._options.Bucket,
                    Key = key,
                    UploadId = _uploadId,
                    PartETags = _parts,
                }, cancellationToken);
            }

            _kept = true;
        }

        /// <summary>Stores the unfinished part (if any) as the object <paramref name="tailKey"/> and keeps the multipart upload.</summary>
        public async Task<long> PutTailAsync(string tailKey)
        {
            var length = _scratch?.Length ?? 0;
            await CloseScratchAsync();
            if (length > 0)
            {
                await store._s3.PutObjectAsync(new PutObjectRequest
                {
                    BucketName = store._options.Bucket,
                    Key = tailKey,
                    FilePath = _scratchPath,
                    UseChunkEncoding = false,
                }, CancellationToken.None);
            }

            _kept = true;
            return length;
        }

        private FileStream OpenScratch() => new(_scratchPath, FileMode.Create, FileAccess.ReadWrite, FileShare.Read, 0);

        private async Task UploadPartAsync(CancellationToken cancellationToken)
        {
            _uploadId ??= (await store._s3.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest
            {
                BucketName = store._options.Bucket,
                Key = key,
            }, cancellationToken)).UploadId;

            await CloseScratchAsync();
            var partNumber = _parts.Count + 1;
            var response = await store._s3.UploadPartAsync(new UploadPartRequest
            {
                BucketName = store._options.Bucket,
                Key = key,
                UploadId = _uploadId,
                PartNumber = partNumber,
                FilePath = _scratchPath,
                UseChunkEncoding = false,
            }, cancellationToken);
            _parts.Add(new PartETag(partNumber, response.ETag));
            File.Delete(_scratchPath);
        }

        private async Task CloseScratchAsync()
        {
            if (_scratch is not null)
            {
                await _scratch.DisposeAsync();
                _scratch = null;
            }
        }

        public override async ValueTask DisposeAsync()
        {
            await CloseScratchAsync();
            File.Delete(_scratchPath);
            if (_uploadId is not null && !_continuing && !_kept)
            {
                try
                {
                    await store._s3.AbortMultipartUploadAsync(store._options.Bucket, key, _uploadId, CancellationToken.None);
                }
                catch (AmazonServiceException ex)
                {
                    store.LogDeleteFailed(ex, key);
                }
            }

            await base.DisposeAsync();
        }

        public override void Write(byte[] buffer, int offset, int count) =>
            WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>
    /// A seekable read-only view of one immutable object: each read after a seek opens a ranged GET from
    /// the position to the end, so a Range request costs one ranged GET and memory does not grow with size.
    /// </summary>
    private sealed class RangedObjectStream(IAmazonS3 s3, string bucket, string key, long length) : Stream
    {
        private GetObjectResponse? _response;
        private long _position;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position >= length || buffer.IsEmpty)
            {
                return 0;
            }

            _response ??= await s3.GetObjectAsync(new GetObjectRequest
            {
                BucketName = bucket,
                Key = key,
                ByteRange = new ByteRange(_position, length - 1),
            }, cancellationToken);
            var read = await _response.ResponseStream.ReadAsync(buffer, cancellationToken);
            if (read == 0)
            {
                throw new IOException($"The object {key} ended at {_position} of {length} bytes.");
            }

            _position += read;
            return read;
        }

        public override int Read(byte[] buffer, int offset, int count) =>
            ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override long Seek(long offset, SeekOrigin origin)
        {
            var target = origin switch
            {
                SeekOrigin.Begin => offset,
                SeekOrigin.Current => _position + offset,
                SeekOrigin.End => length + offset,
                _ => throw new ArgumentOutOfRangeException(nameof(origin)),
            };
            ArgumentOutOfRangeException.ThrowIfNegative(target, nameof(offset));
            if (target != _position)
            {
                CloseResponse();
                _position = target;
            }

            return _position;
        }

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => Seek(value, SeekOrigin.Begin); }
        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private void CloseResponse()
        {
            _response?.Dispose();
            _response = null;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                CloseResponse();
            }

            base.Dispose(disposing);
        }
    }
}

/// <summary>Settings of the s3 backend (<c>Storage:S3:*</c>).</summary>
public sealed record S3StoreOptions
{
    /// <summary>S3's (and R2's) smallest part other than the last.</summary>
    public const long MinPartSizeBytes = 5 * 1024 * 1024;

    public required string ServiceUrl { get; init; }
    public required string Bucket { get; init; }
    public required string AccessKeyId { get; init; }
    public required string SecretAccessKey { get; init; }
    public string Region { get; init; } = "auto";

    /// <summary>Every part but the last has exactly this size; at most one part is staged on local disk per upload.</summary>
    public long PartSizeBytes { get; init; } = 16 * 1024 * 1024;

    /// <summary>Where parts are staged; only ever a cache of a part in flight.</summary>
    public required string ScratchDirectory { get; init; }
}
