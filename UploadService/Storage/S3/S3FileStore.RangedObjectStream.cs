using Amazon.S3;
using Amazon.S3.Model;

namespace UploadService.Storage;

public sealed partial class S3FileStore
{
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
