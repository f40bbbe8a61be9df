using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Aspire.Hosting.ApplicationModel;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Aspire.Hosting;

/// <summary>
/// The local container runtime's control API, on 127.0.0.1 only, for the Worker's Durable Objects (every
/// request carries the runtime's key): start an instance for a Durable Object (or find the one it has), wait
/// for an instance's exit, signal it, destroy it. It only ever starts the upload service; a request cannot
/// name a command. Each instance is a row in the dashboard under the runtime, with its state, exit code and
/// console output.
/// </summary>
public sealed partial class LocalContainerRuntime(
    ContainerRuntimeResource resource,
    ResourceNotificationService notifications,
    ResourceLoggerService loggers,
    ILoggerFactory loggerFactory) : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan EngineProbeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>What Cloudflare answers a start beyond max_instances; the Durable Object turns it into 503 + Retry-After.</summary>
    public const string MaxInstancesExceeded =
        "Maximum number of running container instances exceeded. Try again later, or try configuring a higher value for max_instances";

    private static readonly TimeSpan GracefulStop = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan HealthPollInterval = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan HealthTimeout = TimeSpan.FromSeconds(60);
    private const int MaxExitWaitSeconds = 60;

    private readonly Lock _gate = new();
    private readonly Dictionary<string, UploadServiceInstance> _instances = [];
    private readonly Dictionary<string, int> _startsByUser = [];
    private readonly HttpClient _health = new() { Timeout = TimeSpan.FromSeconds(2) };
    private WebApplication? _api;
    private InstanceNetwork? _network;
    private ILogger _log = null!;

    /// <summary>Where the control API listens (127.0.0.1), once started.</summary>
    public Uri Url => resource.Url ?? throw new InvalidOperationException("The container runtime has not started.");

    /// <summary>The key every control request must carry (<c>Authorization: Bearer …</c>).</summary>
    public string Token => resource.Token;

    /// <summary>The most instances that run at once: <c>Containers:MaxInstances</c>, else wrangler.toml's max_instances.</summary>
    public int MaxInstances { get; private set; }

    /// <summary>Every instance started in this run, running or exited, oldest first.</summary>
    public IReadOnlyList<UploadServiceInstanceInfo> Instances
    {
        get
        {
            lock (_gate)
            {
                return [.. _instances.Values.OrderBy(i => i.StartedAt).Select(Describe)];
            }
        }
    }

    // Started by the resource's InitializeResourceEvent (ContainerRuntimeExtensions), when the orchestrator
    // brings the app up; registered as a hosted service so that the host's stop reaches StopAsync.
    Task IHostedService.StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Opens the control API and marks the resource running (the Worker waits for that).</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _log = loggers.GetLogger(resource);
        var settings = resource.Settings;
        if (settings is { Image: { } candidate, ImageIfEngineAnswers: true })
        {
            // `auto`: containers if the engine answers now, else processes of the project.
            var (answers, why) = await candidate.EngineAnswersAsync(EngineProbeTimeout, cancellationToken);
            settings = resource.Settings = settings with { Image = answers ? candidate : null, ImageIfEngineAnswers = false };
            UploadServiceExtensions.LogMode(loggerFactory, answers ? UploadServiceMode.Container : UploadServiceMode.Project,
                answers ? $"auto: {why}" : $"auto: no usable container engine ({why}; set ASPIRE_CONTAINER_RUNTIME=podman for podman)");
        }
        MaxInstances = settings.MaxInstances ?? WranglerToml.MaxInstances(settings.WranglerToml, "UserAppContainer");
        if (settings.Image is { } image)
        {
            await RemoveLeftoverContainersAsync(image, cancellationToken);
            await BuildImageAsync(image, cancellationToken);
            if (await InstanceNetwork.UnreachableAsync(image, cancellationToken) is { } unreachable)
            {
                _log.LogWarning("Instances run on the host network, egress not enforced: {Why}", unreachable);
            }
            else
            {
                await OpenNetworkAsync(image, cancellationToken);
            }
        }
        else
        {
            if (!File.Exists(settings.UploadServiceDll))
            {
                throw new InvalidOperationException($"{settings.UploadServiceDll} is missing: build the solution (dotnet build) before running the AppHost.");
            }
            // Data directories of a run that did not stop cleanly: no instance of this run owns them.
            if (Directory.Exists(settings.InstancesRoot)) Directory.Delete(settings.InstancesRoot, recursive: true);
            Directory.CreateDirectory(settings.InstancesRoot);
        }

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        builder.Services.AddRoutingCore();
        var api = builder.Build();
        api.Use(RequireKey);
        api.MapPost("/instances", StartInstance);
        api.MapGet("/instances/{id}/exit", WaitForExit);
        api.MapPost("/instances/{id}/signal", SignalInstance);
        api.MapDelete("/instances/{id}", DestroyInstance);
        await api.StartAsync(cancellationToken);
        _api = api;
        var address = api.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        resource.Url = new Uri(address);

        _log.LogInformation("Listening on {Url}; at most {Max} instances (max_instances), each {What}",
            resource.Url, MaxInstances, What);
        await notifications.PublishUpdateAsync(resource, s => s with
        {
            State = KnownResourceStates.Running,
            StartTimeStamp = DateTime.UtcNow,
            Properties = [.. s.Properties,
                new("runtime.url", resource.Url.ToString()),
                new("runtime.max_instances", MaxInstances.ToString(CultureInfo.InvariantCulture)),
                new("runtime.sleep_after", resource.Settings.SleepAfter ?? "the class's sleepAfter"),
                new("runtime.network", _network is null
                    ? "the host's (processes: egress is not enforced)"
                    : $"{InstanceNetwork.Name} {_network.Subnet}, relay {_network.OutboundUrl}{(_network.FirewallMissing is { } why ? $", no firewall rules: {why}" : "")}")],
        });
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        UploadServiceInstance[] running;
        lock (_gate)
        {
            running = [.. _instances.Values.Where(i => !i.HasExited)];
        }
        // As when the machine stops: SIGTERM, then SIGKILL for whatever lingers.
        foreach (var instance in running) instance.Signal(15);
        var all = Task.WhenAll(running.Select(i => i.Exited));
        if (await Task.WhenAny(all, Task.Delay(GracefulStop, CancellationToken.None)) != all)
        {
            foreach (var instance in running) instance.Signal(9);
            await all;
        }
        try
        {
            if (_api is not null) await _api.StopAsync(cancellationToken);
        }
        finally
        {
            // The firewall rules go with the runtime, whatever happened to the control API.
            if (_network is not null) await _network.DisposeAsync();
            _network = null;
        }
        await notifications.PublishUpdateAsync(resource, s => s with { State = KnownResourceStates.Finished, StopTimeStamp = DateTime.UtcNow });
    }

    public async ValueTask DisposeAsync()
    {
        if (_api is not null) await _api.DisposeAsync();
        _health.Dispose();
    }

    private async Task RequireKey(HttpContext context, RequestDelegate next)
    {
        var expected = Encoding.UTF8.GetBytes("Bearer " + resource.Token);
        var given = Encoding.UTF8.GetBytes(context.Request.Headers.Authorization.ToString());
        if (!CryptographicOperations.FixedTimeEquals(expected, given))
        {
            _log.LogWarning("Refused {Method} {Path} from {Remote}: no or a wrong key",
                context.Request.Method, context.Request.Path, context.Connection.RemoteIpAddress);
            await Results.Problem(statusCode: 401, detail: "The container runtime answers only the Worker's Durable Objects (Authorization: Bearer <CONTAINER_RUNTIME_TOKEN>).")
                .ExecuteAsync(context);
            return;
        }
        await next(context);
    }

    private async Task<IResult> StartInstance(StartRequest request, CancellationToken cancellationToken)
    {
        if (request.DurableObjectId is null || !DurableObjectIdFormat().IsMatch(request.DurableObjectId))
        {
            return Results.Problem(statusCode: 400, detail: "durableObjectId must be a Durable Object id (64 hexadecimal digits).");
        }
        if (request.Name is null || !NameFormat().IsMatch(request.Name))
        {
            return Results.Problem(statusCode: 400, detail: "name must be 1-128 characters of A-Z a-z 0-9 . _ - (a user id).");
        }
        if (request.Entrypoint is { Length: > 0 })
        {
            return Results.Problem(statusCode: 400, detail: "The local container runtime runs only the upload service's own entrypoint; a start request cannot name a command.");
        }

        // Containers go on the internal network when the Durable Object turned internet access off (the Worker's
        // default is on, as Cloudflare's), else on the host's network, where the relay's address means nothing: the
        // outbound route is the Worker's on loopback.
        var env = request.Env ?? [];
        var network = request.EnableInternet == false ? _network : null;
        if (_network is not null && network is null)
        {
            var relay = _network.OutboundBase;
            var worker = await WorkerUrlAsync(cancellationToken);
            env = env.ToDictionary(e => e.Key, e => e.Value.StartsWith(relay + "/", StringComparison.Ordinal) ? worker + e.Value[relay.Length..] : e.Value);
        }

        UploadServiceInstance instance;
        lock (_gate)
        {
            var existing = _instances.Values.FirstOrDefault(i => i.DurableObjectId == request.DurableObjectId && !i.HasExited);
            if (existing is not null)
            {
                // The object was re-created (e.g. wrangler restarted) while its container ran: as on Cloudflare,
                // the container outlives that, and the new object finds it running.
                return Results.Ok(Answer(existing));
            }
            var running = _instances.Values.Count(i => !i.HasExited);
            if (running >= MaxInstances)
            {
                _log.LogWarning("Refused to start an instance for {User}: {Running} of {Max} running", request.Name, running, MaxInstances);
                return Results.Problem(statusCode: 503, detail: MaxInstancesExceeded);
            }
            var count = _startsByUser[request.Name] = _startsByUser.GetValueOrDefault(request.Name) + 1;
            var id = $"{request.Name}-{count}";
            var log = loggers.GetLogger(id);
            instance = UploadServiceInstance.Start(id, request.Name, request.DurableObjectId, env, resource.Settings, network, log);
            _instances[id] = instance;
        }
        resource.Commands?.AddTo(instance.Resource, instance.User);
        _log.LogInformation("Started {Id} for user {User}: pid {Pid}, port {Port}", instance.Id, instance.User, instance.ProcessId, instance.Port);
        await PublishAsync(instance, KnownResourceStates.Starting, KnownResourceStateStyles.Info);
        _ = ObserveAsync(instance);
        return Results.Created($"/instances/{instance.Id}", Answer(instance));
    }

    private async Task<IResult> WaitForExit(string id, int? wait, CancellationToken cancellationToken)
    {
        var instance = Find(id);
        if (instance is null) return UnknownInstance(id);
        var seconds = Math.Clamp(wait ?? 0, 0, MaxExitWaitSeconds);
        try
        {
            await instance.Exited.WaitAsync(TimeSpan.FromSeconds(seconds), cancellationToken);
        }
        catch (TimeoutException)
        {
        }
        return instance.HasExited
            ? Results.Ok(new ExitAnswer(true, instance.Exited.Result))
            : Results.Ok(new ExitAnswer(false, null));
    }

    private IResult SignalInstance(string id, SignalRequest request)
    {
        var instance = Find(id);
        if (instance is null) return UnknownInstance(id);
        if (request.Signal is < 1 or > 64) return Results.Problem(statusCode: 400, detail: "signal must be a signal number (1-64).");
        _log.LogInformation("Signal {Signal} to {Id}", request.Signal, id);
        instance.Signal(request.Signal);
        return Results.Json(new { }, statusCode: 202);
    }

    private async Task<IResult> DestroyInstance(string id)
    {
        var instance = Find(id);
        if (instance is null) return UnknownInstance(id);
        _log.LogInformation("Destroying {Id} (SIGKILL)", id);
        instance.Signal(9);
        return Results.Ok(new ExitAnswer(true, await instance.Exited));
    }

    /// <summary>Follows an instance in the dashboard: running once its /health answers, then its exit code.</summary>
    private async Task ObserveAsync(UploadServiceInstance instance)
    {
        try
        {
            await FollowAsync(instance);
        }
        catch (Exception ex)
        {
            _log.LogError(ex, "Following {Id} in the dashboard failed", instance.Id);
        }
    }

    private async Task FollowAsync(UploadServiceInstance instance)
    {
        var deadline = DateTime.UtcNow + HealthTimeout;
        while (!instance.HasExited && DateTime.UtcNow < deadline)
        {
            try
            {
                using var response = await _health.GetAsync(new Uri($"http://127.0.0.1:{instance.Port}/health"));
                if (response.IsSuccessStatusCode)
                {
                    var ms = (DateTime.UtcNow - instance.StartedAt).TotalMilliseconds;
                    _log.LogInformation("{Id} answered /health {Ms:0} ms after it was started", instance.Id, ms);
                    await PublishAsync(instance, KnownResourceStates.Running, KnownResourceStateStyles.Success);
                    break;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }
            await Task.WhenAny(instance.Exited, Task.Delay(HealthPollInterval));
        }

        var code = await instance.Exited;
        _log.LogInformation("{Id} exited with code {Code}; its data directory is gone", instance.Id, code);
        await PublishAsync(instance, KnownResourceStates.Exited, code == 0 ? KnownResourceStateStyles.Info : KnownResourceStateStyles.Error, code);
    }

    /// <summary>Puts instances whose Durable Object turned internet access off on the internal network (see <see cref="InstanceNetwork"/>).</summary>
    private async Task OpenNetworkAsync(ContainerImage image, CancellationToken cancellationToken)
    {
        var network = _network = await InstanceNetwork.OpenAsync(image, WorkerUrlAsync, _log, cancellationToken);
        resource.OutboundUrl = network.OutboundBase;
        if (network.FirewallMissing is { } why)
        {
            _log.LogWarning("Instances are on the internal network {Network} (no internet, not the host's loopback), but {Why}: " +
                "they can still reach each other and whatever this machine serves on all its addresses (on {Gateway})",
                InstanceNetwork.Name, why, network.OutboundUrl.Host);
        }
        _log.LogInformation("Instances are on {Network} ({Subnet}, bridge {Bridge}) and reach only the Worker's outbound route, through {Relay}{Firewall}",
            InstanceNetwork.Name, network.Subnet, network.Bridge, network.OutboundUrl,
            network.FirewallMissing is null ? "; firewall rules in place" : "");
    }

    /// <summary>The Worker as the relay reaches it (the Worker starts after the runtime, so asked per request).</summary>
    private async ValueTask<string> WorkerUrlAsync(CancellationToken cancellationToken) =>
        await (resource.WorkerUrl ?? throw new InvalidOperationException("The runtime was not given the Worker (WithContainerRuntime).")).GetValueAsync(cancellationToken)
            ?? throw new InvalidOperationException("The Worker has no address yet.");

    private string What => resource.Settings.Image is { } image
        ? $"a container of {image.Tag} ({image.Engine})"
        : $"a process of {resource.Settings.UploadServiceDll}";

    /// <summary>Builds the image from the unchanged Dockerfile (layers cached by the engine between runs).</summary>
    private async Task BuildImageAsync(ContainerImage image, CancellationToken cancellationToken)
    {
        _log.LogInformation("Building {Tag} from {Dockerfile} with {Engine}", image.Tag, image.Dockerfile, image.Engine);
        var code = await image.RunAsync(["build", "-f", image.Dockerfile, "-t", image.Tag, "."], _log, cancellationToken);
        if (code != 0)
        {
            throw new InvalidOperationException($"`{image.Engine} build -f {image.Dockerfile} .` exited with {code} (its output is in the log of {resource.Name}).");
        }
    }

    /// <summary>Containers of a run that did not stop cleanly (they carry the label <c>upload-instance</c>).</summary>
    private async Task RemoveLeftoverContainersAsync(ContainerImage image, CancellationToken cancellationToken)
    {
        var names = new List<string>();
        await image.RunAsync(["ps", "-a", "--filter", "label=upload-instance", "--format", "{{.Names}}"], _log, cancellationToken, names.Add);
        if (names.Count > 0) await image.RunAsync(["rm", "-f", .. names], _log, cancellationToken);
    }

    private Task PublishAsync(UploadServiceInstance instance, string state, string style, int? exitCode = null) =>
        notifications.PublishUpdateAsync(instance.Resource, instance.Id, s => s with
        {
            ResourceType = "User container",
            State = new ResourceStateSnapshot(state, style),
            CreationTimeStamp = instance.StartedAt,
            StartTimeStamp = instance.StartedAt,
            StopTimeStamp = exitCode is null ? null : DateTime.UtcNow,
            ExitCode = exitCode,
            Urls = exitCode is null ? [new UrlSnapshot("http", $"http://127.0.0.1:{instance.Port}", IsInternal: false)] : [],
            Properties =
            [
                new("resource.parentName", resource.Name),
                new("executable.path", resource.Settings.Image?.Tag ?? resource.Settings.UploadServiceDll),
                new("container.user", instance.User),
                new("container.durable_object_id", instance.DurableObjectId),
                new("executable.pid", instance.ProcessId),
                new("container.port", $"127.0.0.1:{instance.Port} → {UploadServiceInstance.ContainerPort}"),
                new("container.network", instance.Network),
                new("container.data", instance.DataDirectory),
            ],
        });

    private UploadServiceInstance? Find(string id)
    {
        lock (_gate)
        {
            return _instances.GetValueOrDefault(id);
        }
    }

    private static IResult UnknownInstance(string id) =>
        Results.Problem(statusCode: 404, detail: $"No instance '{id}' in this run of the container runtime.");

    private static InstanceAnswer Answer(UploadServiceInstance instance) => new(instance.Id,
        new Dictionary<string, int> { [UploadServiceInstance.ContainerPort.ToString(CultureInfo.InvariantCulture)] = instance.Port });

    private static UploadServiceInstanceInfo Describe(UploadServiceInstance instance) => new(
        instance.Id, instance.User, instance.DurableObjectId, instance.ProcessId, instance.Port, instance.DataDirectory,
        instance.StartedAt, instance.HasExited ? instance.Exited.Result : null);

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex DurableObjectIdFormat();

    // The Worker's user id rule (worker/src/user-id.js).
    [GeneratedRegex("^[A-Za-z0-9._-]{1,128}$")]
    private static partial Regex NameFormat();

    private sealed record StartRequest(string? DurableObjectId, string? Name, Dictionary<string, string>? Env, string[]? Entrypoint, bool? EnableInternet);
    private sealed record SignalRequest(int Signal);
    private sealed record InstanceAnswer(string Id, IReadOnlyDictionary<string, int> Ports);
    private sealed record ExitAnswer(bool Exited, int? ExitCode);
}

/// <summary>An instance as the runtime knows it (for tests and the bench): <see cref="ExitCode"/> is null while it runs.</summary>
public sealed record UploadServiceInstanceInfo(
    string Id, string User, string DurableObjectId, int ProcessId, int Port, string DataDirectory, DateTime StartedAt, int? ExitCode);

/// <summary>A user's container in the dashboard: one row per instance, named <c>{user}-{n}</c>.</summary>
internal sealed class UserContainerResource(string name) : Resource(name);
