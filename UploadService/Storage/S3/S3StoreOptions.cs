using Amazon.Runtime;
using Amazon.S3;

namespace UploadService.Storage;

/// <summary>Settings of the s3 backend (<c>Storage:S3:*</c>).</summary>
public sealed record S3StoreOptions
{
    /// <summary>S3's (and R2's) smallest part other than the last.</summary>
    public const long MinPartSizeBytes = 5 * 1024 * 1024;

    /// <summary>S3's (and R2's) most parts in one multipart upload.</summary>
    public const int MaxParts = 10_000;

    public required string ServiceUrl { get; init; }
    public required string Bucket { get; init; }
    public required string AccessKeyId { get; init; }
    public required string SecretAccessKey { get; init; }
    public string Region { get; init; } = "auto";

    /// <summary>
    /// Every part but the last has exactly this size; an upload holds at most two in memory (one in flight, one
    /// filling). 10 MiB: 20 MiB of memory per upload; 10,000 parts (S3's and R2's limit) make 97 GiB; and the upload
    /// page's tus chunks (50 MiB) are five parts exactly, so its PATCHes store and read back no tail.
    /// </summary>
    public long PartSizeBytes { get; init; } = 10 * 1024 * 1024;

    /// <summary>The largest file these parts can make: <see cref="MaxParts"/> of them.</summary>
    public long MaxFileBytes => PartSizeBytes * MaxParts;

    /// <summary>
    /// How much the SDK reads from a part (and writes to the connection) at a time: its default, 8 KiB, costs a
    /// system call per 8 KiB each way; 64 KiB stays below the large-object heap (the SDK allocates it per request).
    /// </summary>
    private const int CopyBufferBytes = 64 * 1024;

    /// <summary>
    /// The SDK settings an S3-compatible endpoint (R2) needs. SDK v4 defaults to computing a CRC32
    /// checksum for every upload and sending it as an aws-chunked trailer, and to validating response
    /// checksums: R2 rejects some of those trailers and headers, so checksums are calculated and validated
    /// only when an operation requires them. Bodies are sent with a plain signed payload (never
    /// aws-chunked), path-style addressing (<c>{endpoint}/{bucket}/{key}</c>), and the region signed
    /// into requests is the configured one (<c>auto</c> for R2). Parts are copied in 64 KiB pieces. The
    /// benchmark's reference client uses them too.
    /// </summary>
    public AmazonS3Config ClientConfig() => new()
    {
        ServiceURL = ServiceUrl,
        AuthenticationRegion = Region,
        ForcePathStyle = true,
        RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
        ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        BufferSize = CopyBufferBytes,
    };

    /// <summary>
    /// A client with <see cref="ClientConfig"/> (and <paramref name="http"/>, where a test counts requests) that
    /// signs the bytes it uploads as <c>UNSIGNED-PAYLOAD</c> (<see cref="UnsignedPayloadS3Client"/>).
    /// </summary>
    public AmazonS3Client CreateClient(HttpClientFactory? http = null)
    {
        var config = ClientConfig();
        if (http is not null)
        {
            config.HttpClientFactory = http;
        }

        return new UnsignedPayloadS3Client(new BasicAWSCredentials(AccessKeyId, SecretAccessKey), config);
    }
}
