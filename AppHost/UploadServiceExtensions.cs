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

// How the AppHost runs the upload service (the local modes) and where its files go (the local S3 server or its disk).
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

    /// <summary>Configuration key of the storage backend; `--storage s3|filesystem` sets it too.</summary>
    public const string StorageKey = "Storage:Provider";
    private const string StorageSwitch = "storage";
    private const string LocalBucket = "uploads";

    /// <summary>
    /// Where files outlive a sleeping container. With <c>s3</c> (the default): s3rver, a local S3-compatible
    /// server from tests/s3-server (npm), standing in for R2, with its data in <c>.data/s3/</c> and a bucket
    /// <c>uploads</c>. With <c>filesystem</c>: nothing (null); the upload service keeps its files on its own disk.
    /// </summary>
    public static IResourceBuilder<ExecutableResource>? AddLocalStorage(this IDistributedApplicationBuilder builder, string s3Name)
    {
        var provider = builder.Configuration[StorageSwitch] ?? builder.Configuration[StorageKey] ?? "s3";
        if (provider.Equals("filesystem", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }
        if (!provider.Equals("s3", StringComparison.OrdinalIgnoreCase))
        {
            throw new AppHostSetupException($"unknown storage '{provider}' ({StorageKey} / --{StorageSwitch}): use s3 or filesystem.");
        }

        var serverDirectory = S3rver.Folder(builder.RepositoryRoot());
        var install = builder.AddExecutable($"{s3Name}-install", "npm", serverDirectory,
                "install", "--no-audit", "--no-fund", "--loglevel=warn")
            .ExcludeFromManifest();
        var s3 = builder.AddExecutable(s3Name, "node", serverDirectory,
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
    /// Per-user instances: the Worker gets the bucket's settings as it gets R2's in production (R2_* vars), and its
    /// Durable Objects hand them to their instances in <c>envVars</c>. With the filesystem backend, a warning.
    /// </summary>
    public static IResourceBuilder<ExecutableResource> WithStorage(
        this IResourceBuilder<ExecutableResource> worker, IResourceBuilder<ExecutableResource>? s3)
    {
        if (s3 is null)
        {
            worker.ApplicationBuilder.Eventing.Subscribe<BeforeStartEvent>((e, _) =>
            {
                e.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Aspire.Hosting.UploadService").LogWarning(
                    "Storage: filesystem. Each upload-service instance keeps its files on its own disk, which is deleted when " +
                    "the instance sleeps or stops, as on Cloudflare without R2. Run with --storage s3 (the default) to keep them.");
                return Task.CompletedTask;
            });
            return worker;
        }
        return worker
            .WithEnvironment("R2_ENDPOINT", s3.GetEndpoint("http"))
            .WithEnvironment("R2_BUCKET", LocalBucket)
            .WithEnvironment("R2_ACCESS_KEY_ID", S3rver.Account)
            .WithEnvironment("R2_SECRET_ACCESS_KEY", S3rver.Account)
            .WaitFor(s3);
    }

    /// <summary>
    /// The shared upload service: its settings point at the bucket directly, or it keeps its files on its disk in
    /// <c>.data/uploads/</c> (which with s3 holds only part scratch files).
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
        if (!Enum.TryParse<UploadServiceMode>(requested, ignoreCase: true, out var mode) || !Enum.IsDefined(mode))
        {
            throw new AppHostSetupException($"unknown upload service mode '{requested}' ({ModeKey} / --{ModeSwitch}): use project, container, shared or auto.");
        }
        return mode;
    }
}
