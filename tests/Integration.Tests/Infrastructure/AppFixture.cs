using System.Net;
using System.Net.Sockets;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Integration.Tests;

/// <summary>
/// Starts the real AppHost once for all integration tests: the upload service on Kestrel, `wrangler dev`
/// (workerd running the Worker and the UserAppContainer Durable Object) and the Aspire dashboard, which
/// receives the telemetry of both. Files go to a temporary folder that is removed afterwards, unless the
/// fixture was given a data root of the caller's (then a second AppHost on that root sees what this one stored).
/// </summary>
public class AppFixture : IAsyncLifetime
{
    private readonly bool _ownsDataRoot;

    public AppFixture() : this(Path.Combine(Path.GetTempPath(), $"upload-it-{Guid.NewGuid():N}"), ownsDataRoot: true)
    {
    }

    protected AppFixture(string dataRoot, bool ownsDataRoot)
    {
        DataRoot = dataRoot;
        _ownsDataRoot = ownsDataRoot;
    }

    public static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(4);

    /// <summary>The heap limit the upload service runs under: memory must not grow with file size.</summary>
    public const string UploadServiceHeapHardLimit = "0x8000000"; // 128 MiB

    public string AuthSecret { get; } = $"integration-tests-{Guid.NewGuid():N}-{Guid.NewGuid():N}";
    public string InternalSecret { get; } = $"internal-{Guid.NewGuid():N}-{Guid.NewGuid():N}";
    public string DashboardApiKey { get; } = Guid.NewGuid().ToString("N");
    public string DataRoot { get; }
    public string UploadsRoot => Path.Combine(DataRoot, "uploads");

    public DistributedApplication App { get; private set; } = null!;
    public Uri WorkerUrl { get; private set; } = null!;
    public Uri UploadServiceUrl { get; private set; } = null!;
    public Uri DashboardUrl { get; private set; } = null!;

    /// <summary>
    /// How the AppHost runs the upload service. Most tests pin one service for every user, on the filesystem
    /// store (they look at its files, restart it, kill it and limit its heap); <see cref="PerUserAppFixture"/>
    /// runs the default, an instance per user.
    /// </summary>
    protected virtual IEnumerable<string> ModeArguments => ["--UploadService:Mode=shared", "--storage=filesystem"];

    /// <summary>The resource that is up once the upload service can be reached.</summary>
    protected virtual string UploadServiceResource => "upload-service";

    /// <summary>AppHost arguments a variant of the fixture adds (e.g. <c>--storage=s3</c>).</summary>
    protected virtual IEnumerable<string> ExtraArguments => [];

    public virtual async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(StartTimeout);

        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(
            [
                // The upload service as a .NET project, on any machine: container mode is checked by
                // scripts/container-check.sh.
                .. ModeArguments,
                $"--LocalData:Root={DataRoot}",
                $"--Parameters:auth-secret={AuthSecret}",
                $"--Parameters:internal-secret={InternalSecret}",
                $"--AppHost:DashboardApiKey={DashboardApiKey}",
                $"--ASPNETCORE_URLS=http://127.0.0.1:{FreePort()}",
                $"--ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL=http://127.0.0.1:{FreePort()}",
                $"--ASPIRE_DASHBOARD_OTLP_HTTP_ENDPOINT_URL=http://127.0.0.1:{FreePort()}",
                $"--ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL=http://127.0.0.1:{FreePort()}",
                "--ASPIRE_ALLOW_UNSECURED_TRANSPORT=true",
                .. ExtraArguments,
            ],
            // The dashboard is on so that the telemetry tests read traces the way a developer sees them.
            (options, _) => options.DisableDashboard = false,
            cts.Token);

        appHost.Services.AddLogging(logging => logging
            .SetMinimumLevel(LogLevel.Warning)
            .AddFilter("Aspire.Hosting", LogLevel.Warning));

        if (appHost.Resources.OfType<ProjectResource>().Any(r => r.Name == "upload-service"))
        {
            appHost.CreateResourceBuilder<ProjectResource>("upload-service")
                .WithEnvironment("DOTNET_GCHeapHardLimit", UploadServiceHeapHardLimit);
        }

        App = await appHost.BuildAsync(cts.Token);
        await App.StartAsync(cts.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync(UploadServiceResource, cts.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync("worker", cts.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync("aspire-dashboard", cts.Token);

        WorkerUrl = App.GetEndpoint("worker", "http");
        UploadServiceUrl = UploadServiceResource == "upload-service" ? App.GetEndpoint("upload-service", "http") : null!;
        // The dashboard's endpoints are proxied like every other, so the test builder randomizes them too.
        DashboardUrl = App.GetEndpoint("aspire-dashboard", "http");
    }

    /// <summary>A client for the Worker, the way a user reaches the system; long timeout for the 1 GiB cases.</summary>
    public HttpClient CreateWorkerClient(string? userId = null)
    {
        var client = new HttpClient { BaseAddress = WorkerUrl, Timeout = TimeSpan.FromMinutes(10) };
        if (userId is not null)
        {
            client.DefaultRequestHeaders.Authorization = new("Bearer", UserTokens.Create(AuthSecret, userId, TimeSpan.FromHours(1)));
        }
        return client;
    }

    /// <summary>A client for the Worker's admin API (/admin/containers), with a token that carries the admin role.</summary>
    public HttpClient CreateAdminClient()
    {
        var client = new HttpClient { BaseAddress = WorkerUrl, Timeout = TimeSpan.FromMinutes(1) };
        client.DefaultRequestHeaders.Authorization = new("Bearer", UserTokens.Create(AuthSecret, "operator", TimeSpan.FromHours(1), admin: true));
        return client;
    }

    public virtual async Task DisposeAsync()
    {
        await StopAsync();
        if (_ownsDataRoot)
        {
            DeleteDataRoot();
        }
    }

    /// <summary>Stops every resource (wrangler takes its workerd down with it) and disposes the AppHost.</summary>
    protected async Task StopAsync()
    {
        if (App is not null)
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
    }

    protected void DeleteDataRoot()
    {
        try { Directory.Delete(DataRoot, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>
    /// Files of uploads in flight: the filesystem store writes a PUT or multipart part under
    /// <c>{Storage:Root}/tmp/</c> and renames it into place when complete.
    /// </summary>
    public string[] InFlightUploadFiles()
    {
        var temp = Path.Combine(UploadsRoot, "tmp");
        return Directory.Exists(temp) ? Directory.GetFiles(temp, "*", SearchOption.AllDirectories) : [];
    }

    /// <summary>
    /// Bytes of an unfinished tus upload on the filesystem store's disk (<c>{Storage:Root}/uploads/{user}/{id}.bin</c>),
    /// which grows while a PATCH is being written: a PATCH has reached the service once this is past its offset.
    /// </summary>
    public long TusUploadBytesOnDisk(Uri location)
    {
        var id = location.Segments[^1];
        var uploads = Path.Combine(UploadsRoot, "uploads");
        var file = Directory.Exists(uploads) ? Directory.GetFiles(uploads, id + ".bin", SearchOption.AllDirectories).SingleOrDefault() : null;
        return file is null ? 0 : new FileInfo(file).Length;
    }

    /// <summary>The latest line of a resource's console log that contains <paramref name="text"/>, polled with a deadline.</summary>
    public async Task<string> LogLineAsync(string resource, string text, TimeSpan timeout)
    {
        var logs = App.Services.GetRequiredService<ResourceLoggerService>();
        var model = App.Services.GetRequiredService<DistributedApplicationModel>().Resources.Single(r => r.Name == resource);
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            string? latest = null;
            await foreach (var batch in logs.GetAllAsync(model))
            {
                latest = batch.LastOrDefault(line => line.Content.Contains(text, StringComparison.Ordinal)).Content ?? latest;
            }

            if (latest is not null) return latest;
            await Task.Delay(TimeSpan.FromMilliseconds(200));
        }

        throw new TimeoutException($"no line with '{text}' in the log of {resource} within {timeout}");
    }

    /// <summary>
    /// The heap limit the fixture sets (<see cref="UploadServiceHeapHardLimit"/>) is in effect in the upload service:
    /// the memory it says at start the GC may use. A test "under a 128 MiB heap limit" asserts this first, so that
    /// it cannot pass without the limit.
    /// </summary>
    public async Task AssertHeapLimitInEffectAsync()
    {
        var mib = Convert.ToInt64(UploadServiceHeapHardLimit, 16) >> 20;
        var line = await LogLineAsync(UploadServiceResource, "Memory available to the GC:", TimeSpan.FromSeconds(30));
        Assert.EndsWith($"Memory available to the GC: {mib} MiB", line.TrimEnd());
    }

    protected static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

[CollectionDefinition(Name)]
public sealed class AppCollection : ICollectionFixture<AppFixture>
{
    public const string Name = "app";
}

/// <summary>
/// The same AppHost with <c>--storage=s3</c>: the upload service keeps everything in a bucket of the local
/// S3-compatible server (resource <c>s3</c>), so its own data folder can be wiped like a fresh container's disk.
/// </summary>
public sealed class S3AppFixture : AppFixture
{
    protected override IEnumerable<string> ExtraArguments => ["--storage=s3"];
}

// Run alone, after the other collections: a second AppHost moving gigabytes beside the first one would
// measure this 2-core machine rather than the service.
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class S3AppCollection : ICollectionFixture<S3AppFixture>
{
    public const string Name = "app-s3";
}
