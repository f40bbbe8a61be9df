using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace UploadService.Storage;

public sealed partial class S3FileStore
{
    /// <summary>
    /// The destination of the hashing copy: stages bytes in a scratch file of at most one part and uploads
    /// each full part of the multipart upload to <paramref name="key"/>; <see cref="CompleteAsync"/> sends the
    /// rest (a single PUT when there was no full part). A tus append continues a multipart upload
    /// (<paramref name="uploadId"/>, <paramref name="parts"/>) and keeps the unfinished part with
    /// <see cref="PutTailAsync"/> instead. Disposing without completing aborts a multipart upload that this
    /// instance started and removes the scratch file. The SDK's own MD5 of every body (its default checksum
    /// validation) is off: each request signs its payload's SHA-256 (SigV4), which the store checks, so the MD5
    /// only cost a third pass over the bytes (with the file's own SHA-256).
    /// </summary>
    private sealed class PartUploader(S3FileStore store, string key, string? uploadId = null, IEnumerable<PartETag>? parts = null) : Stream
    {
        public string Key => key;

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
                var request = new PutObjectRequest { BucketName = store._options.Bucket, Key = key, UseChunkEncoding = false, DisableDefaultChecksumValidation = true };
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
                    DisableDefaultChecksumValidation = true,
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
                DisableDefaultChecksumValidation = true,
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
}
