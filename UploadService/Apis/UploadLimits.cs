using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using UploadService.Storage;

namespace UploadService.Apis;

public sealed class UploadOptions
{
    public const string SectionName = "Upload";

    /// <summary>The largest file a single upload may store (default 5 GiB).</summary>
    public long MaxFileBytes { get; set; } = 5L * 1024 * 1024 * 1024;

    /// <summary>
    /// The most bytes one user may store, files and unfinished tus uploads together (0, the default: no
    /// quota). See <see cref="UserQuota"/> for what is counted when.
    /// </summary>
    public long UserQuotaBytes { get; set; }

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
    /// <summary>Where Kestrel's connection limits are configured (appsettings.json lists every one this service sets).</summary>
    public const string KestrelLimitsSection = "Kestrel:Limits";

    /// <summary>
    /// Binds <c>Upload:*</c>, makes Kestrel's request body limit follow <c>Upload:MaxFileBytes</c>, and applies
    /// <c>Kestrel:Limits</c>: how long a client may take to send its headers (<c>RequestHeadersTimeout</c>) or
    /// sit idle between requests (<c>KeepAliveTimeout</c>), how slowly it may send a body
    /// (<c>MinRequestBodyDataRate:BytesPerSecond</c> after <c>:GracePeriod</c>; a slower body is cut off with
    /// 408 and the connection closed, which ends the request and releases what it held, such as a tus upload's
    /// lock), and how many and how large headers may be (<c>MaxRequestHeaderCount</c>,
    /// <c>MaxRequestHeadersTotalSize</c>, <c>MaxRequestLineSize</c>; more → 431/414).
    /// </summary>
    public static TBuilder AddUploadLimits<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddOptions<UploadOptions>()
            .Bind(builder.Configuration.GetSection(UploadOptions.SectionName))
            .Validate(options => options.MaxFileBytes > 0, "Upload:MaxFileBytes must be positive.")
            .Validate(options => options.UserQuotaBytes >= 0, "Upload:UserQuotaBytes must be 0 (no quota) or positive.")
            .ValidateOnStart();
        builder.Services.AddSingleton<UserQuota>();

        var limits = builder.Configuration.GetSection(KestrelLimitsSection);
        builder.Services.AddOptions<KestrelServerOptions>()
            .Configure<IOptions<UploadOptions>>((kestrel, upload) =>
            {
                kestrel.Limits.MaxRequestBodySize = upload.Value.MaxRequestBodyBytes;
                ApplyLimits(kestrel.Limits, limits);
            });
        return builder;
    }

    private static void ApplyLimits(KestrelServerLimits kestrel, IConfigurationSection limits)
    {
        kestrel.KeepAliveTimeout = limits.GetValue(nameof(kestrel.KeepAliveTimeout), kestrel.KeepAliveTimeout);
        kestrel.RequestHeadersTimeout = limits.GetValue(nameof(kestrel.RequestHeadersTimeout), kestrel.RequestHeadersTimeout);
        kestrel.MaxRequestHeaderCount = limits.GetValue(nameof(kestrel.MaxRequestHeaderCount), kestrel.MaxRequestHeaderCount);
        kestrel.MaxRequestHeadersTotalSize = limits.GetValue(nameof(kestrel.MaxRequestHeadersTotalSize), kestrel.MaxRequestHeadersTotalSize);
        kestrel.MaxRequestLineSize = limits.GetValue(nameof(kestrel.MaxRequestLineSize), kestrel.MaxRequestLineSize);
        var bodyRate = limits.GetSection(nameof(kestrel.MinRequestBodyDataRate));
        if (bodyRate.Exists())
        {
            var current = kestrel.MinRequestBodyDataRate;
            kestrel.MinRequestBodyDataRate = new MinDataRate(
                bodyRate.GetValue(nameof(MinDataRate.BytesPerSecond), current?.BytesPerSecond ?? 240),
                bodyRate.GetValue(nameof(MinDataRate.GracePeriod), current?.GracePeriod ?? TimeSpan.FromSeconds(5)));
        }
    }
}
