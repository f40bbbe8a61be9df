using LocalS3;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Aspire.Hosting;

/// <summary>How the AppHost runs the upload service: see docs/local-modes.md.</summary>
public enum UploadServiceMode
{
    /// <summary>Container when a container engine answers, else project.</summary>
    Auto,
    /// <summary>One instance per user, each a process of the UploadService project, started on demand by the
    /// local container runtime (needs only the .NET SDK).</summary>
    Project,
    /// <summary>One instance per user, each a container of the image built from UploadService/Dockerfile, the file
    /// wrangler.toml deploys, started on demand by the local container runtime (needs Docker or Podman).</summary>
    Container,
    /// <summary>One UploadService project process that every user's Durable Object forwards to, e.g. to debug it.</summary>
    Shared,
}

/// <summary>Where files go locally (`--storage`): see docs/local-modes.md.</summary>
public enum LocalStorage
{
    /// <summary>As in production: the R2 binding (wrangler dev's emulation) behind each user's Durable Object; per-user modes only.</summary>
    R2,
    /// <summary>A local S3-compatible server, its keys in every instance: the "any S3" setup.</summary>
    S3,
    /// <summary>Each instance's own disk, gone when it sleeps (as on Cloudflare without a bucket).</summary>
    Filesystem,
}

// How the AppHost runs the upload service (the local modes) and where its files go (R2, the local S3 server or its disk).
public static class UploadServiceExtensions
{
    /// <summary>Configuration key of the mode; `--upload-service project|container|shared|auto` sets it too.</summary>
    public const string ModeKey = "UploadService:Mode";
    private const string ModeSwitch = "upload-service";

    /// <summary>The upload service's name: the shared mode's resource, and the subject of the mode's log line.</summary>
    public const string ServiceName = "upload-service";

    public const string InternalSecretVariable = "INTERNAL_SECRET"; // read by the service and the Durable Object

    /// <summary>
    /// The mode asked for, said once in the AppHost's log: <c>project</c> and <c>container</c> run an instance per
    /// user through the container runtime, <c>shared</c> one upload service for every user. <c>auto</c> is
    /// resolved by the container runtime when it starts (it asks the container engine, which can take seconds),
    /// not while the graph is built, and logged then.
    /// </summary>
    public static UploadServiceMode SelectUploadServiceMode(this IDistributedApplicationBuilder builder)
    {
        var mode = builder.RequestedUploadServiceMode();
        if (mode == UploadServiceMode.Auto)
        {
            return mode;
        }
        var reason = mode == UploadServiceMode.Container ? $"asked for (container engine: {builder.ContainerEngine()})" : "asked for";
        builder.Eventing.Subscribe<BeforeStartEvent>((e, _) =>
        {
            LogMode(e.Services.GetRequiredService<ILoggerFactory>(), mode, reason);
            return Task.CompletedTask;
        });
        return mode;
    }

    /// <summary>The line that says how the upload service runs, and why (in the AppHost's console).</summary>
    internal static void LogMode(ILoggerFactory loggers, UploadServiceMode mode, string reason)
    {
        var how = mode switch
        {
            UploadServiceMode.Project => "a project, one instance per user",
            UploadServiceMode.Shared => "a project shared by all users",
            _ => "a container, one per user",
        };
        loggers.CreateLogger("Aspire.Hosting.UploadService").LogInformation("{Name} runs as {How}: {Reason}", ServiceName, how, reason);
    }

    /// <summary>
    /// <c>--upload-service shared</c>: one upload service, the UploadService project, for every user (e.g. to
    /// attach a debugger). It accepts only requests signed with <paramref name="internalSecret"/> (as the Durable
    /// Object signs them).
    /// </summary>
    public static IResourceBuilder<ProjectResource> AddSharedUploadService(
        this IDistributedApplicationBuilder builder, string name, IResourceBuilder<ParameterResource> internalSecret)
    {
#pragma warning disable ASPIRECERTIFICATES001 // evaluation API; without it Aspire warns about a missing dev certificate
        return builder.AddProject<Projects.UploadService>(name)
            .WithEnvironment(InternalSecretVariable, internalSecret)
            .WithHttpHealthCheck("/health")
            .WithoutHttpsCertificate(); // served over http locally: no dev certificate needed
#pragma warning restore ASPIRECERTIFICATES001
    }

    /// <summary>The container engine Aspire would use: <c>ASPIRE_CONTAINER_RUNTIME</c>, else docker.</summary>
    public static string ContainerEngine(this IDistributedApplicationBuilder builder) =>
        builder.Configuration["ASPIRE_CONTAINER_RUNTIME"] ?? builder.Configuration["DOTNET_ASPIRE_CONTAINER_RUNTIME"] ?? "docker";

    /// <summary>Configuration key of the storage; `--storage r2|s3|filesystem` sets it too.</summary>
    public const string StorageKey = "Storage:Provider";
    private const string StorageSwitch = "storage";
    private const string LocalBucket = "uploads";

    /// <summary>
    /// Where files outlive a sleeping instance, as asked for: <c>r2</c> by default in the per-user modes, <c>s3</c> in
    /// the shared mode, whose one process for every user has no Durable Object in front of it to reach R2 through.
    /// </summary>
    public static LocalStorage SelectLocalStorage(this IDistributedApplicationBuilder builder, UploadServiceMode mode)
    {
        var requested = builder.Configuration[StorageSwitch] ?? builder.Configuration[StorageKey];
        if (requested is null)
        {
            return mode == UploadServiceMode.Shared ? LocalStorage.S3 : LocalStorage.R2;
        }
        if (Named<LocalStorage>(requested) is not { } storage)
        {
            throw new AppHostSetupException($"unknown storage '{requested}' ({StorageKey} / --{StorageSwitch}): use r2, s3 or filesystem.");
        }
        if (storage == LocalStorage.R2 && mode == UploadServiceMode.Shared)
        {
            throw new AppHostSetupException("--storage r2 reaches the bucket through each user's Durable Object, which the shared upload service " +
                "(one process for every user) does not have: use --storage s3 (its default) or filesystem with --upload-service shared.");
        }
        return storage;
    }

    /// <summary>
    /// The local S3-compatible server for <see cref="LocalStorage.S3"/>: s3rver from tests/s3-server (npm), with its data
    /// in <c>.data/s3/</c> and a bucket <c>uploads</c>.
    /// </summary>
    public static IResourceBuilder<ExecutableResource> AddLocalS3(this IDistributedApplicationBuilder builder, string name)
    {
        var serverDirectory = S3rver.Folder(builder.RepositoryRoot());
        var install = builder.AddExecutable($"{name}-install", "npm", serverDirectory,
                "install", "--no-audit", "--no-fund", "--loglevel=warn")
            .ExcludeFromManifest();
        var s3 = builder.AddExecutable(name, "node", serverDirectory,
                [S3rver.Script, .. S3rver.Arguments(builder.LocalDataPath("s3"), bucket: LocalBucket)])
            .WithHttpEndpoint(name: "http")
            .WithHttpHealthCheck("/")
            .WaitForCompletion(install)
            .ExcludeFromManifest();
        var endpoint = s3.GetEndpoint("http");
        s3.WithArgs(context => context.Args.Add(ReferenceExpression.Create($"--port={endpoint.Property(EndpointProperty.TargetPort)}")));
        install.WithParentRelationship(s3);
        return s3;
    }

    /// <summary>
    /// Per-user instances: the Worker's <c>FILE_STORAGE</c> tells the Durable Objects what to hand their instances
    /// (worker/src/env.ts). <c>r2</c>: the R2 binding, which wrangler dev emulates (data under <c>.data/wrangler/</c>),
    /// reached through each object's outbound handler; <c>s3</c>: the local S3 server's settings as R2_* vars, keys
    /// included, as production's explicit S3 mode; <c>disk</c>: nothing, with a warning.
    /// </summary>
    public static IResourceBuilder<ExecutableResource> WithStorage(
        this IResourceBuilder<ExecutableResource> worker, LocalStorage storage, IResourceBuilder<ExecutableResource>? s3)
    {
        switch (storage)
        {
            case LocalStorage.R2:
                return worker.WithEnvironment("FILE_STORAGE", "r2");
            case LocalStorage.Filesystem:
                worker.ApplicationBuilder.Eventing.Subscribe<BeforeStartEvent>((e, _) =>
                {
                    e.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Aspire.Hosting.UploadService").LogWarning(
                        "Storage: filesystem. Each upload-service instance keeps its files on its own disk, which is deleted when " +
                        "the instance sleeps or stops, as on Cloudflare without R2. Run with --storage r2 (the default) to keep them.");
                    return Task.CompletedTask;
                });
                return worker.WithEnvironment("FILE_STORAGE", "disk");
            default:
                ArgumentNullException.ThrowIfNull(s3);
                return worker
                    .WithEnvironment("FILE_STORAGE", "s3")
                    .WithEnvironment("R2_ENDPOINT", s3.GetEndpoint("http"))
                    .WithEnvironment("R2_BUCKET", LocalBucket)
                    .WithEnvironment("R2_ACCESS_KEY_ID", S3rver.Account)
                    .WithEnvironment("R2_SECRET_ACCESS_KEY", S3rver.Account)
                    .WaitFor(s3);
        }
    }

    /// <summary>
    /// The shared upload service: its settings point at the bucket directly (<paramref name="s3"/>), or it keeps its
    /// files on its disk in <c>.data/uploads/</c> (unused with s3).
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithStorage(
        this IResourceBuilder<ProjectResource> uploadService, IResourceBuilder<ExecutableResource>? s3)
    {
        uploadService.WithEnvironment("Storage__Root", uploadService.ApplicationBuilder.LocalDataPath("uploads"));
        if (s3 is null)
        {
            return uploadService;
        }
        uploadService
            .WithEnvironment("Storage__Provider", "s3")
            .WithEnvironment("Storage__S3__ServiceUrl", s3.GetEndpoint("http"))
            .WithEnvironment("Storage__S3__Bucket", LocalBucket)
            .WithEnvironment("Storage__S3__AccessKeyId", S3rver.Account)
            .WithEnvironment("Storage__S3__SecretAccessKey", S3rver.Account)
            .WithEnvironment("Storage__S3__Region", "auto")
            .WaitFor(s3);
        return uploadService;
    }

    /// <summary>The mode asked for (`auto` unresolved); a mode that does not exist is refused with the ones that do.</summary>
    public static UploadServiceMode RequestedUploadServiceMode(this IDistributedApplicationBuilder builder)
    {
        var requested = builder.Configuration[ModeSwitch] ?? builder.Configuration[ModeKey] ?? "auto";
        if (requested.Equals("wrangler", StringComparison.OrdinalIgnoreCase))
        {
            throw new AppHostSetupException("--upload-service wrangler is not run by the AppHost: with Docker, run `npx wrangler dev` in worker/ " +
                "(containers enabled, one per user; see docs/local-modes.md). Use project, container, shared or auto here.");
        }
        if (Named<UploadServiceMode>(requested) is not { } mode)
        {
            throw new AppHostSetupException($"unknown upload service mode '{requested}' ({ModeKey} / --{ModeSwitch}): use project, container, shared or auto.");
        }
        return mode;
    }

    /// <summary>The member named <paramref name="value"/> in any case; null for anything else (numbers and lists too).</summary>
    private static TEnum? Named<TEnum>(string value) where TEnum : struct, Enum =>
        Enum.GetValues<TEnum>().Select(member => (TEnum?)member)
            .FirstOrDefault(member => member.ToString()!.Equals(value, StringComparison.OrdinalIgnoreCase));
}
