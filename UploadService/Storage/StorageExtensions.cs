using UploadService.Storage;

namespace Microsoft.Extensions.Hosting;

public static class StorageExtensions
{
    /// <summary>The folder used when <c>Storage:Root</c> is not set, relative to the content root.</summary>
    public const string DefaultRoot = ".data";

    /// <summary>
    /// Registers the file store. <c>Storage:Root</c> names its folder (relative paths are resolved
    /// against the content root). The store is opened, and so recovered, at start-up rather than on the
    /// first request; either way the singleton is built once, before any request can use it.
    /// </summary>
    public static TBuilder AddFileStore<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        // Resolved when the store is built, so that configuration added after this call still counts.
        builder.Services.AddSingleton(services =>
        {
            var root = services.GetRequiredService<IConfiguration>()["Storage:Root"];
            var contentRoot = services.GetRequiredService<IHostEnvironment>().ContentRootPath;
            return new FileSystemFileStore(
                Path.GetFullPath(string.IsNullOrWhiteSpace(root) ? DefaultRoot : root, contentRoot),
                services.GetService<TimeProvider>(),
                services.GetRequiredService<ILogger<FileSystemFileStore>>());
        });
        builder.Services.AddSingleton<IFileStore>(services => services.GetRequiredService<FileSystemFileStore>());
        builder.Services.AddSingleton<IUploadStore>(services => services.GetRequiredService<FileSystemFileStore>());
        builder.Services.AddHostedService<FileStoreOpener>();
        return builder;
    }

    // Opening the store sweeps orphans from a previous crash; doing it here keeps that off the first request.
    private sealed class FileStoreOpener(IFileStore store) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            GC.KeepAlive(store);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
