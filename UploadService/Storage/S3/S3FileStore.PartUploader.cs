using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.IO;

namespace UploadService.Storage;

public sealed partial class S3FileStore
{
    /// <summary>
    /// The destination of the hashing copy: gathers bytes in memory, one part at a time
    /// (<see cref="S3StoreOptions.PartSizeBytes"/>, pooled blocks), and uploads each full part of the multipart
    /// upload to <paramref name="key"/> while the next one fills: at most one part is in flight and one filling,
    /// so memory stays at two parts per upload however large the file. <see cref="CompleteAsync"/> sends the
    /// rest (a single PUT when there was no full part). A tus append continues a multipart upload
    /// (<paramref name="uploadId"/>, <paramref name="parts"/>) and keeps the unfinished part with
    /// <see cref="PutTailAsync"/> instead. Disposing without completing aborts a multipart upload that this
    /// instance started. A part in flight runs to its end (it is a few seconds at most): a request that is
    /// cancelled stops reading its body, and what it wrote is dropped or kept by the caller as usual.
    /// </summary>
    private sealed class PartUploader(S3FileStore store, string key, string? uploadId = null, IEnumerable<PartETag>? parts = null) : Stream
    {
        public string Key => key;

        private readonly List<PartETag> _parts = parts?.ToList() ?? [];
        private readonly bool _continuing = uploadId is not null;
        private RecyclableMemoryStream? _filling;
        private Task<PartETag>? _sending;
        private string? _uploadId = uploadId;
        private bool _kept;
        private bool _broken;

        private long PartSize => store._options.PartSizeBytes;

        public string? UploadId => _uploadId;

        public IReadOnlyList<PartETag> Parts => _parts;

        /// <summary>
        /// Bytes written so far: the uploaded parts, the part in flight and the one filling. After a part failed, the
        /// parts stored before it: the bytes after it are dropped, so that what a tus append keeps has no hole.
        /// </summary>
        public long Written => (_parts.Count + (_sending is null ? 0 : 1)) * PartSize + (_filling?.Length ?? 0);

        /// <summary>Starts the filling part with the bytes of an earlier, unfinished part (a tus upload's tail).</summary>
        public async Task PrefillAsync(string tailKey, CancellationToken cancellationToken)
        {
            using var response = await store._s3.GetObjectAsync(store._options.Bucket, tailKey, cancellationToken);
            _filling ??= store.NewPart();
            await response.ResponseStream.CopyToAsync(_filling, HashingCopy.BufferSize, cancellationToken);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            ThrowIfBroken();
            while (!buffer.IsEmpty)
            {
                _filling ??= store.NewPart();
                var room = (int)Math.Min(buffer.Length, PartSize - _filling.Length);
                _filling.Write(buffer.Span[..room]);
                buffer = buffer[room..];
                if (_filling.Length == PartSize)
                {
                    await DrainAsync(); // one part in flight: the next waits for it
                    _sending = UploadPartAsync(TakeFilling()!, _parts.Count + 1);
                }
            }
        }

        /// <summary>
        /// The bytes, when every one of them is still in memory and they are at most <see cref="SmallFileBytes"/> (no
        /// part was uploaded): the caller keeps them in the file's record, and nothing is sent or left to complete.
        /// </summary>
        public byte[]? TakeSmallContent()
        {
            if (_uploadId is not null || _sending is not null || _filling?.Length > SmallFileBytes)
            {
                return null;
            }

            using var part = TakeFilling();
            _kept = true;
            return part?.ToArray() ?? [];
        }

        public async Task CompleteAsync(CancellationToken cancellationToken)
        {
            ThrowIfBroken();
            await DrainAsync();
            if (_uploadId is null)
            {
                using var body = TakeFilling() ?? store.NewPart();
                await PutObjectAsync(key, body, cancellationToken);
            }
            else
            {
                var last = TakeFilling();
                if (last is { Length: > 0 })
                {
                    _parts.Add(await UploadPartAsync(last, _parts.Count + 1));
                }
                else
                {
                    last?.Dispose();
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
            await DrainAsync();
            using var tail = TakeFilling();
            var length = tail?.Length ?? 0;
            if (tail is { Length: > 0 })
            {
                await PutObjectAsync(tailKey, tail, CancellationToken.None);
            }

            _kept = true;
            return length;
        }

        private Task PutObjectAsync(string objectKey, Stream body, CancellationToken cancellationToken) =>
            store._s3.PutObjectAsync(new PutObjectRequest
            {
                BucketName = store._options.Bucket,
                Key = objectKey,
                InputStream = body,
                AutoCloseStream = false,
                UseChunkEncoding = false,
                DisableDefaultChecksumValidation = true,
            }, cancellationToken);

        private RecyclableMemoryStream? TakeFilling()
        {
            var part = _filling;
            _filling = null;
            part?.Position = 0;
            return part;
        }

        /// <summary>
        /// Waits for the part in flight and counts it. Its failure is this write's, and it ends the uploader: the part
        /// filling meanwhile comes after a part that is not stored, so it is dropped (<see cref="Written"/> then stops at
        /// the parts stored) and nothing more is written.
        /// </summary>
        private async Task DrainAsync()
        {
            if (_sending is { } sending)
            {
                _sending = null;
                try
                {
                    _parts.Add(await sending);
                }
                catch
                {
                    TakeFilling()?.Dispose();
                    _broken = true;
                    throw;
                }
            }
        }

        private void ThrowIfBroken()
        {
            if (_broken)
            {
                throw new InvalidOperationException("A part of this upload failed: the bytes after it cannot be stored.");
            }
        }

        /// <summary>Uploads one part (starting the multipart upload first, the first time), then frees its memory.</summary>
        private async Task<PartETag> UploadPartAsync(RecyclableMemoryStream part, int partNumber)
        {
            using (part)
            {
                _uploadId ??= (await store._s3.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest
                {
                    BucketName = store._options.Bucket,
                    Key = key,
                }, CancellationToken.None)).UploadId;

                var response = await store._s3.UploadPartAsync(new UploadPartRequest
                {
                    BucketName = store._options.Bucket,
                    Key = key,
                    UploadId = _uploadId,
                    PartNumber = partNumber,
                    InputStream = part,
                    UseChunkEncoding = false,
                    DisableDefaultChecksumValidation = true,
                }, CancellationToken.None);
                return new PartETag(partNumber, response.ETag);
            }
        }

        public override async ValueTask DisposeAsync()
        {
            try
            {
                await DrainAsync();
            }
            catch (Exception)
            {
                // Only a write that failed already disposes with a part in flight: the part goes with the rest.
            }

            TakeFilling()?.Dispose();
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
