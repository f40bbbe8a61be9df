using Amazon.S3;
using UploadService.Apis;

namespace UploadService.Storage;

public static class StorageExtensions
{
    /// <summary>The folder used when <c>Storage:Root</c> is not set, relative to the content root.</summary>
    public const string DefaultRoot = ".data";

    /// <summary>
    /// Registers the file store chosen by <c>Storage:Provider</c>: <c>filesystem</c> (the default) keeps files
    /// and unfinished uploads under <c>Storage:Root</c> (relative paths are resolved against the content
    /// root); <c>s3</c> keeps both in the bucket named by <c>Storage:S3:*</c> (<see cref="S3FileStore"/>) and
    /// writes nothing to local disk. The store is opened (and so
    /// recovered) by a hosted service at start-up, before the first request.
    /// </summary>
    public static TBuilder AddFileStore<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        // Settings are resolved when a store is built, so that configuration added after this call still counts;
        // the provider is chosen here, from the configuration the host builder has.
        builder.Services.AddSingleton(services => new FileSystemFileStore(
            StorageRoot(services),
            services.GetService<TimeProvider>(),
            services.GetRequiredService<ILogger<FileSystemFileStore>>()));
        builder.Services.AddSingleton(services => S3Options(services));
        builder.Services.AddSingleton<IAmazonS3>(services => services.GetRequiredService<S3StoreOptions>().CreateClient());
        builder.Services.AddSingleton(services => new S3FileStore(
            services.GetRequiredService<IAmazonS3>(),
            services.GetRequiredService<S3StoreOptions>(),
            services.GetService<TimeProvider>(),
            services.GetRequiredService<ILogger<S3FileStore>>()));

        var provider = builder.Configuration["Storage:Provider"];
        if (string.Equals(provider, "s3", StringComparison.OrdinalIgnoreCase))
        {
            builder.Services.AddSingleton<FileStore>(services => services.GetRequiredService<S3FileStore>());
            // Checked at start: a file over this limit would fail at its 10,001st part, after the bytes before it.
            builder.Services.AddOptions<UploadOptions>()
                .Validate<S3StoreOptions>(
                    (upload, s3) => upload.MaxFileBytes <= s3.MaxFileBytes,
                    "Upload:MaxFileBytes is more than 10,000 parts of Storage:S3:PartSizeBytes, the most one multipart upload "
                    + "holds on S3 and R2: raise Storage:S3:PartSizeBytes or lower Upload:MaxFileBytes.")
                .ValidateOnStart();
        }
        else if (string.IsNullOrEmpty(provider) || string.Equals(provider, "filesystem", StringComparison.OrdinalIgnoreCase))
        {
            builder.Services.AddSingleton<FileStore>(services => services.GetRequiredService<FileSystemFileStore>());
        }
        else
        {
            throw new InvalidOperationException($"Storage:Provider must be 'filesystem' or 's3', not '{provider}'.");
        }

        builder.Services.AddSingleton<IFileStore>(services => services.GetRequiredService<FileStore>());
        builder.Services.AddSingleton<ITusStore>(services => services.GetRequiredService<FileStore>());
        builder.Services.AddHostedService<FileStoreOpener>();
        return builder;
    }

    private static string StorageRoot(IServiceProvider services)
    {
        var root = services.GetRequiredService<IConfiguration>()["Storage:Root"];
        var contentRoot = services.GetRequiredService<IHostEnvironment>().ContentRootPath;
        return Path.GetFullPath(string.IsNullOrWhiteSpace(root) ? DefaultRoot : root, contentRoot);
    }

    /// <summary><c>Storage:S3:*</c>; what is not set keeps the default of <see cref="S3StoreOptions"/>.</summary>
    private static S3StoreOptions S3Options(IServiceProvider services)
    {
        var s3 = services.GetRequiredService<IConfiguration>().GetSection("Storage:S3");
        var options = new S3StoreOptions
        {
            ServiceUrl = Required(s3, "ServiceUrl"),
            Bucket = Required(s3, "Bucket"),
            AccessKeyId = Required(s3, "AccessKeyId"),
            SecretAccessKey = Required(s3, "SecretAccessKey"),
        };
        if (s3["Region"] is { Length: > 0 } region)
        {
            options = options with { Region = region };
        }

        return s3.GetValue<long?>("PartSizeBytes") is { } partSize ? options with { PartSizeBytes = partSize } : options;
    }

    private static string Required(IConfigurationSection section, string key) =>
        section[key] is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"Storage:Provider is s3 but {section.Path}:{key} is not set.");

    /// <summary>
    /// Opens the store (<see cref="FileStore.Open"/>) when the host starts: hosted services start before the
    /// server takes requests, so the first request finds it ready and does not pay for it.
    /// </summary>
    private sealed class FileStoreOpener(FileStore store) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            store.Open();
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
