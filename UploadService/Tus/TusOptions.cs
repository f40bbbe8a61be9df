namespace UploadService.Tus;

/// <summary><c>Tus:*</c> settings. The size limit is <c>Upload:MaxFileBytes</c> (advertised as Tus-Max-Size).</summary>
public sealed class TusOptions
{
    public const string SectionName = "Tus";

    /// <summary>How long an unfinished upload lives after its creation or last PATCH (sliding).</summary>
    public TimeSpan Expiration { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How often the background sweep deletes expired uploads.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromMinutes(5);
}
