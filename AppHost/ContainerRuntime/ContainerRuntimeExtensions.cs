using System.Reflection;
using System.Text.RegularExpressions;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Aspire.Hosting;

/// <summary>
/// The local counterpart of Cloudflare's container runtime: each user's Durable Object asks it (through its
/// stand-in <c>ctx.container</c>, worker/src/dev/runtime-container.ts) to start, signal, destroy and watch
/// that object's own instance of the upload service, a process with its own port and throw-away data
/// directory, at most <c>max_instances</c> at once. See docs/local-modes.md.
/// </summary>
public static partial class ContainerRuntimeExtensions
{
    public const string MaxInstancesKey = "Containers:MaxInstances";
    public const string SleepAfterKey = "Containers:SleepAfter";

    /// <summary>
    /// Adds the runtime. With <paramref name="engine"/> (docker or podman) each instance is a container of the image
    /// built from UploadService/Dockerfile, the file wrangler.toml deploys; without, a process of the built project.
    /// With <paramref name="ifEngineAnswers"/> (<c>auto</c>) the runtime asks the engine when it starts and runs
    /// processes if it does not answer.
    /// </summary>
    public static IResourceBuilder<ContainerRuntimeResource> AddContainerRuntime(
        this IDistributedApplicationBuilder builder, string name, string? engine = null, bool ifEngineAnswers = false)
    {
        var maxInstances = builder.Configuration[MaxInstancesKey];
        int? max = null;
        if (maxInstances is not null)
        {
            max = int.TryParse(maxInstances, out var parsed) && parsed > 0
                ? parsed
                : throw new AppHostSetupException($"{MaxInstancesKey} must be a whole number above 0, not '{maxInstances}'.");
        }
        var sleepAfter = builder.Configuration[SleepAfterKey];
        if (sleepAfter is not null && !SleepAfterFormat().IsMatch(sleepAfter))
        {
            throw new AppHostSetupException($"{SleepAfterKey} must be a duration such as 30s, 10m or 1h (what the Container class's sleepAfter takes), not '{sleepAfter}'.");
        }

        var settings = new ContainerRuntimeSettings(
            UploadServiceDll: UploadServiceDll(),
            // The build context is the repository root, as in worker/wrangler.toml (image_build_context = "..").
            Image: engine is null ? null : new ContainerImage(engine, "UploadService/Dockerfile", builder.RepositoryRoot(), "localhost/upload-service-instance:dev"),
            ImageIfEngineAnswers: ifEngineAnswers,
            InstancesRoot: Path.Combine(builder.LocalDataRoot(), "instances"),
            WranglerToml: Path.Combine(builder.RepositoryRoot(), "worker", "wrangler.toml"),
            MaxInstances: max,
            SleepAfter: sleepAfter);
        var runtime = new ContainerRuntimeResource(name, settings);
        builder.Services.AddSingleton(runtime);
        builder.Services.AddSingleton<LocalContainerRuntime>();
        builder.Services.AddHostedService(services => services.GetRequiredService<LocalContainerRuntime>());
        builder.Eventing.Subscribe<InitializeResourceEvent>(runtime, async (e, cancellationToken) =>
        {
            try
            {
                await e.Services.GetRequiredService<LocalContainerRuntime>().StartAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The Worker waits for the runtime: a runtime that cannot start fails it too, with this reason in the log.
                e.Logger.LogError("{Message}", ex.Message);
                await e.Notifications.PublishUpdateAsync(runtime, s => s with { State = KnownResourceStates.FailedToStart });
            }
        });
        return builder.AddResource(runtime)
            .WithInitialState(new CustomResourceSnapshot
            {
                ResourceType = "Container runtime",
                State = KnownResourceStates.Starting,
                Properties = [],
            })
            .ExcludeFromManifest();
    }

    /// <summary>
    /// Hands the Worker the runtime's address and key (and the local sleepAfter), once the runtime listens; gives
    /// each instance <i>Stop</i> and <i>Destroy</i> commands that go through the Worker's admin API, with admin
    /// tokens signed with <paramref name="authSecret"/>.
    /// </summary>
    public static IResourceBuilder<ExecutableResource> WithContainerRuntime(
        this IResourceBuilder<ExecutableResource> worker, IResourceBuilder<ContainerRuntimeResource> runtime,
        IResourceBuilder<ParameterResource> authSecret)
    {
        runtime.Resource.Commands = new AdminApiCommands(worker.GetEndpoint("http"), authSecret.Resource);
        // The relay of container mode reaches the Worker through its endpoint's proxy (the AppHost knows that port;
        // the Worker's own port is settled by the orchestrator when it starts the Worker).
        runtime.Resource.WorkerUrl = ReferenceExpression.Create($"http://127.0.0.1:{worker.GetEndpoint("http").Property(EndpointProperty.Port)}");
        return worker
            .WithEnvironment(context =>
            {
                var resource = runtime.Resource;
                context.EnvironmentVariables["CONTAINER_RUNTIME_URL"] = resource.Url?.ToString()
                    ?? throw new InvalidOperationException($"{resource.Name} has not started.");
                context.EnvironmentVariables["CONTAINER_RUNTIME_TOKEN"] = resource.Token;
                // Where instances reach the Worker's outbound route, their storage and telemetry (worker/src/dev/outbound-route.ts):
                // containers through the relay on their network's gateway, processes directly.
                context.EnvironmentVariables["LOCAL_WORKER_URL"] = resource.OutboundUrl is { } relay
                    ? relay
                    : ReferenceExpression.Create($"http://127.0.0.1:{worker.GetEndpoint("http").Property(EndpointProperty.TargetPort)}");
                if (resource.Settings.SleepAfter is { } sleepAfter)
                {
                    context.EnvironmentVariables["CONTAINERS_SLEEP_AFTER"] = sleepAfter;
                }
            })
            .WaitFor(runtime);
    }

    /// <summary>
    /// The upload service as built beside the AppHost (the AppHost's project reference builds it, in the same
    /// configuration): the same code the image runs, JIT-compiled here (the image's is the Native AOT build).
    /// </summary>
    private static string UploadServiceDll()
    {
        var project = Path.GetDirectoryName(new Projects.UploadService().ProjectPath)!;
        var configuration = typeof(ContainerRuntimeExtensions).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        var framework = $"net{Environment.Version.Major}.{Environment.Version.Minor}";
        return Path.Combine(project, "bin", configuration, framework, "UploadService.dll");
    }

    // parseTimeExpression in @cloudflare/containers: a number of seconds, or with an s, m or h suffix.
    [GeneratedRegex(@"^\d+[smh]?$")]
    private static partial Regex SleepAfterFormat();
}
