using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace UploadService.Apis;

public sealed class UploadOptions
{
    public const string SectionName = "Upload";

    /// <summary>The largest file a single upload may store (default 5 GiB).</summary>
    public long MaxFileBytes { get; set; } = 5L * 1024 * 1024 * 1024;

    /// <summary>
    /// Room for multipart framing (boundaries, part headers) on top of one maximal file. A multipart
    /// request carries at most about one maximal file in total; each part is also held to
    /// <see cref="MaxFileBytes"/> on its own.
    /// </summary>
    public const long MultipartOverheadBytes = 1024 * 1024;

    public long MaxRequestBodyBytes => MaxFileBytes > long.MaxValue - MultipartOverheadBytes
        ? long.MaxValue
        : MaxFileBytes + MultipartOverheadBytes;
}

public static class UploadLimitsExtensions
{
    /// <summary>Binds <c>Upload:*</c> and makes Kestrel's request body limit follow <c>Upload:MaxFileBytes</c>.</summary>
    public static TBuilder AddUploadLimits<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddOptions<UploadOptions>()
            .Bind(builder.Configuration.GetSection(UploadOptions.SectionName))
            .Validate(options => options.MaxFileBytes > 0, "Upload:MaxFileBytes must be positive.")
            .ValidateOnStart();

        builder.Services.AddOptions<KestrelServerOptions>()
            .Configure<IOptions<UploadOptions>>((kestrel, upload) =>
                kestrel.Limits.MaxRequestBodySize = upload.Value.MaxRequestBodyBytes);
        return builder;
    }
}
