namespace UploadService.Storage;

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
