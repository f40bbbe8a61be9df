using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Aspire.Hosting;

/// <summary>How the AppHost runs the upload service: see "Local modes" in the README.</summary>
public enum UploadServiceMode
{
    /// <summary>Container when a container engine answers, else project.</summary>
    Auto,
    /// <summary>The UploadService project on the host (needs only the .NET SDK).</summary>
    Project,
    /// <summary>The image built from UploadService/Dockerfile, the file wrangler.toml deploys.</summary>
    Container,
}

// The upload service in one of the local modes: the same endpoint, health check, storage and telemetry
// wiring whether it runs as a .NET project or as the image that ships to Cloudflare.
public static class UploadServiceExtensions
{
    /// <summary>Configuration key of the mode; `--upload-service container|project|auto` sets it too.</summary>
    public const string ModeKey = "UploadService:Mode";
    private const string ModeSwitch = "upload-service";

    private const int ContainerPort = 8000;            // ASPNETCORE_HTTP_PORTS in the Dockerfile; defaultPort in the Durable Object
    private const string ContainerDataPath = "/data";  // Storage__Root in the Dockerfile
    public const string InternalSecretVariable = "INTERNAL_SECRET"; // read by the service and the Durable Object
    private static readonly TimeSpan EngineProbeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Adds the upload service as a project or as a container from UploadService/Dockerfile. It accepts only
    /// requests signed with <paramref name="internalSecret"/> (as the Durable Object signs them).
    /// </summary>
    public static IResourceBuilder<IResourceWithEndpoints> AddUploadService(
        this IDistributedApplicationBuilder builder, string name, IResourceBuilder<ParameterResource> internalSecret)
    {
        var (mode, reason) = builder.ResolveUploadServiceMode();
        builder.Eventing.Subscribe<BeforeStartEvent>((e, _) =>
        {
            e.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Aspire.Hosting.UploadService")
                .LogInformation("{Name} runs as a {Mode}: {Reason}", name, mode.ToString().ToLowerInvariant(), reason);
            return Task.CompletedTask;
        });

        if (mode == UploadServiceMode.Container)
        {
            // The build context is the repository root, as in worker/wrangler.toml (image_build_context = "..").
            // The image runs as uid 1654 ("app"), which does not own the host folder: let it write there.
            var dataPath = builder.LocalDataPath("container-uploads");
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(dataPath, (UnixFileMode)0b111_111_111);
            }
            return builder.AddDockerfile(name, builder.RepositoryRoot(), "UploadService/Dockerfile")
                .WithHttpEndpoint(targetPort: ContainerPort, name: "http")
                .WithBindMount(dataPath, ContainerDataPath)
                .WithEnvironment(InternalSecretVariable, internalSecret)
                .WithOtlpExporter()
                .WithHttpHealthCheck("/health");
        }

#pragma warning disable ASPIRECERTIFICATES001 // evaluation API; without it Aspire warns about a missing dev certificate
        return builder.AddProject<Projects.UploadService>(name)
            .WithEnvironment("Storage__Root", builder.LocalDataPath("uploads"))
            .WithEnvironment(InternalSecretVariable, internalSecret)
            .WithHttpHealthCheck("/health")
            .WithoutHttpsCertificate(); // served over http locally: no dev certificate needed
#pragma warning restore ASPIRECERTIFICATES001
    }

    /// <summary>Configuration key of the storage backend; `--storage filesystem|s3` sets it too.</summary>
    public const string StorageKey = "Storage:Provider";
    private const string StorageSwitch = "storage";
    private const string LocalBucket = "uploads";
    private const string LocalS3Key = "S3RVER"; // s3rver's built-in account, local only

    /// <summary>
    /// With `--storage s3` (or `Storage:Provider=s3`): runs s3rver, a local S3-compatible server from
    /// tests/s3-server (npm), with its data in `.data/s3/`, and points the upload service's s3 backend at its
    /// bucket, as R2 holds the files in production. With `filesystem` (the default) the service keeps its
    /// files on its own disk and nothing is added.
    /// </summary>
    public static IResourceBuilder<IResourceWithEndpoints> WithSelectedStorage(
        this IResourceBuilder<IResourceWithEndpoints> uploadService, string s3Name)
    {
        var builder = uploadService.ApplicationBuilder;
        var provider = builder.Configuration[StorageSwitch] ?? builder.Configuration[StorageKey] ?? "filesystem";
        if (provider.Equals("filesystem", StringComparison.OrdinalIgnoreCase))
        {
            return uploadService;
        }
        if (!provider.Equals("s3", StringComparison.OrdinalIgnoreCase))
        {
            AppHostExtensions.ExitWithError($"unknown storage '{provider}' ({StorageKey} / --{StorageSwitch}): use filesystem or s3.");
        }

        var serverDirectory = Path.Combine(builder.RepositoryRoot(), "tests", "s3-server");
        var install = builder.AddExecutable($"{s3Name}-install", "npm", serverDirectory,
                "install", "--no-audit", "--no-fund", "--loglevel=warn")
            .ExcludeFromManifest();
        var s3 = builder.AddExecutable(s3Name, "node", serverDirectory, "node_modules/s3rver/bin/s3rver.js",
                "--directory", builder.LocalDataPath("s3"), "--address", "127.0.0.1",
                "--configure-bucket", LocalBucket, "--no-vhost-buckets")
            .WithHttpEndpoint(name: "http")
            .WithHttpHealthCheck("/")
            .WaitForCompletion(install)
            .ExcludeFromManifest();
        var endpoint = s3.GetEndpoint("http");
        s3.WithArgs(context => context.Args.Add(ReferenceExpression.Create($"--port={endpoint.Property(EndpointProperty.TargetPort)}")));
        install.WithParentRelationship(s3);

        // Both modes' resources (project, container) take environment and wait: reach them through those interfaces.
        builder.CreateResourceBuilder((IResourceWithEnvironment)uploadService.Resource)
            .WithEnvironment("Storage__Provider", "s3")
            .WithEnvironment("Storage__S3__ServiceUrl", endpoint)
            .WithEnvironment("Storage__S3__Bucket", LocalBucket)
            .WithEnvironment("Storage__S3__AccessKeyId", LocalS3Key)
            .WithEnvironment("Storage__S3__SecretAccessKey", LocalS3Key)
            .WithEnvironment("Storage__S3__Region", "auto");
        builder.CreateResourceBuilder((IResourceWithWaitSupport)uploadService.Resource).WaitFor(s3);
        return uploadService;
    }

    /// <summary>The mode asked for, with `auto` resolved by asking the container engine Aspire would use.</summary>
    public static (UploadServiceMode Mode, string Reason) ResolveUploadServiceMode(this IDistributedApplicationBuilder builder)
    {
        var requested = builder.Configuration[ModeSwitch] ?? builder.Configuration[ModeKey] ?? "auto";
        if (requested.Equals("wrangler", StringComparison.OrdinalIgnoreCase))
        {
            AppHostExtensions.ExitWithError("--upload-service wrangler is not run by the AppHost: with Docker, run `npx wrangler dev` in worker/ " +
                "(containers enabled, one per user; see \"Local modes\" in the README). Use container, project or auto here.");
        }
        if (!Enum.TryParse<UploadServiceMode>(requested, ignoreCase: true, out var mode) || !Enum.IsDefined(mode))
        {
            AppHostExtensions.ExitWithError($"unknown upload service mode '{requested}' ({ModeKey} / --{ModeSwitch}): use container, project or auto.");
        }

        var runtime = builder.Configuration["ASPIRE_CONTAINER_RUNTIME"]
            ?? builder.Configuration["DOTNET_ASPIRE_CONTAINER_RUNTIME"]
            ?? "docker";
        return mode switch
        {
            UploadServiceMode.Project => (mode, "asked for"),
            UploadServiceMode.Container => (mode, $"asked for (container engine: {runtime})"),
            _ => ContainerEngineAnswers(runtime, out var why)
                ? (UploadServiceMode.Container, $"auto: `{runtime} info` answered")
                : (UploadServiceMode.Project, $"auto: no usable container engine ({why}; set ASPIRE_CONTAINER_RUNTIME=podman for podman)"),
        };
    }

    private static bool ContainerEngineAnswers(string runtime, out string why)
    {
        var start = new ProcessStartInfo(runtime)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        start.ArgumentList.Add("info");
        try
        {
            using var process = Process.Start(start);
            if (process is null)
            {
                why = $"`{runtime}` did not start";
                return false;
            }
            process.StandardInput.Close();
            _ = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(EngineProbeTimeout))
            {
                process.Kill(entireProcessTree: true);
                why = $"`{runtime} info` did not answer within {EngineProbeTimeout.TotalSeconds:0} s";
                return false;
            }
            why = $"`{runtime} info` exited with {process.ExitCode}";
            return process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            why = $"`{runtime}` is not installed";
            return false;
        }
    }
}
