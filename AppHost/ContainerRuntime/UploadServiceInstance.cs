using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Aspire.Hosting;

/// <summary>
/// One Durable Object's instance of the upload service, started with the environment the object passed to
/// start() and reachable on its own loopback port: a process of the built project with a data directory of its
/// own that goes when it exits, or a container of the image (<c>--rm</c>: its disk goes with it) on the
/// internal network (<see cref="InstanceNetwork"/>), its port relayed to a loopback port of its own.
/// </summary>
internal sealed class UploadServiceInstance
{
    /// <summary>The port the image serves on (ASPNETCORE_HTTP_PORTS in the Dockerfile, defaultPort in the Durable Object).</summary>
    public const int ContainerPort = 8000;

    private readonly Process _process;
    private readonly ContainerRuntimeSettings _settings;
    private readonly ILogger _log;
    private readonly PortRelay? _relay;
    private readonly CancellationTokenSource _exited;

    private UploadServiceInstance(string id, string user, string durableObjectId, int port, string dataDirectory,
        Process process, ContainerRuntimeSettings settings, PortRelay? relay, CancellationTokenSource exited, ILogger log)
    {
        Id = id;
        User = user;
        DurableObjectId = durableObjectId;
        Port = port;
        DataDirectory = dataDirectory;
        _process = process;
        _settings = settings;
        _relay = relay;
        _exited = exited;
        _log = log;
        ProcessId = process.Id;
        Resource = new UserContainerResource(id);
        Exited = WatchAsync();
    }

    /// <summary>Unique among all instances of this run, e.g. <c>alice-2</c>: the dashboard row and <c>service.instance.id</c>.</summary>
    public string Id { get; }
    public string User { get; }
    public string DurableObjectId { get; }
    /// <summary>The loopback port the service listens on, or that relays to the container's <see cref="ContainerPort"/>.</summary>
    public int Port { get; }
    /// <summary>Where it runs: the host's network, or the instances' internal one (container mode, internet off).</summary>
    public string Network => _relay is null ? "host" : InstanceNetwork.Name;
    /// <summary>The process's data directory, or where the container keeps its files (inside it).</summary>
    public string DataDirectory { get; }
    /// <summary>The service's process, or the container engine's client attached to the container.</summary>
    public int ProcessId { get; }
    public DateTime StartedAt { get; } = DateTime.UtcNow;

    /// <summary>The instance's row in the dashboard, named by its id (one object per row).</summary>
    public UserContainerResource Resource { get; }

    /// <summary>The exit code once the instance has exited (128 + the signal's number when a signal ended it).</summary>
    public Task<int> Exited { get; }
    public bool HasExited => Exited.IsCompleted;

    /// <summary>The container's name in container mode (also the label value that finds leftovers).</summary>
    private string ContainerName => ContainerNameOf(Id);

    private static string ContainerNameOf(string id) => $"upload-instance-{id}";

    /// <summary>
    /// Starts the instance with the environment the Durable Object passed. The runtime adds only the instance's id
    /// for telemetry and, on the host's network, its port (<c>ASPNETCORE_URLS</c>, which takes precedence over the
    /// image's ASPNETCORE_HTTP_PORTS: there each instance needs a port of its own). Nothing of the AppHost's own
    /// environment reaches the service. A container goes on <paramref name="network"/> if given (the Durable
    /// Object turned internet access off), else on the host's network.
    /// </summary>
    public static UploadServiceInstance Start(
        string id, string user, string durableObjectId, IReadOnlyDictionary<string, string> env,
        ContainerRuntimeSettings settings, InstanceNetwork? network, ILogger log)
    {
        var instanceEnv = new Dictionary<string, string>(env)
        {
            ["OTEL_RESOURCE_ATTRIBUTES"] = env.TryGetValue("OTEL_RESOURCE_ATTRIBUTES", out var attributes) && attributes.Length > 0
                ? $"{attributes},service.instance.id={id}"
                : $"service.instance.id={id}",
        };
        var name = ContainerNameOf(id);
        var exited = new CancellationTokenSource();
        PortRelay? relay = null;
        int port;
        if (settings.Image is { } image && network is not null)
        {
            relay = new PortRelay(AddressAsync(image, name, log, exited.Token), log);
            port = relay.Port;
        }
        else
        {
            port = FreePort();
            instanceEnv["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        }
        var dataDirectory = settings.Image is null ? Path.Combine(settings.InstancesRoot, id) : "/data (inside the container)";
        var start = settings.Image is { } engine
            ? ContainerStart(name, id, engine, network is null ? ["--network", "host"] : InstanceNetwork.RunArguments, instanceEnv)
            : ProcessStart(settings.UploadServiceDll, dataDirectory, instanceEnv);
        start.UseShellExecute = false;
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, line) => { if (line.Data is not null) log.LogInformation("{Line}", line.Data); };
        process.ErrorDataReceived += (_, line) => { if (line.Data is not null) log.LogError("{Line}", line.Data); };
        try
        {
            process.Start();
        }
        catch
        {
            exited.Cancel();
            exited.Dispose();
            relay?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            process.Dispose();
            throw;
        }
        process.StandardInput.Close(); // a container started without -i has no input
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new UploadServiceInstance(id, user, durableObjectId, port, dataDirectory, process, settings, relay, exited, log);
    }

    /// <summary>
    /// <c>dotnet UploadService.dll</c> in its output folder, as the image runs its native build in /app, with a
    /// container's environment: a plain PATH and HOME, the image's own ENV (the data directory as
    /// <c>Storage__Root</c>), then the instance's.
    /// </summary>
    private static ProcessStartInfo ProcessStart(string dll, string dataDirectory, Dictionary<string, string> env)
    {
        var home = Path.Combine(dataDirectory, "home");
        var data = Path.Combine(dataDirectory, "data");
        Directory.CreateDirectory(home);
        Directory.CreateDirectory(data);
        var start = new ProcessStartInfo(DotnetHost()) { WorkingDirectory = Path.GetDirectoryName(dll)! };
        start.ArgumentList.Add(dll);
        start.Environment.Clear();
        start.Environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        start.Environment["HOME"] = home;
        start.Environment["ASPNETCORE_HTTP_PORTS"] = ContainerPort.ToString(CultureInfo.InvariantCulture);
        start.Environment["Storage__Root"] = data;
        foreach (var (key, value) in env) start.Environment[key] = value;
        return start;
    }

    /// <summary>
    /// <c>run --rm</c> of the image, attached (the client's exit code is the container's, its output the
    /// container's, and SIGTERM to the client reaches the container), with <paramref name="networkArguments"/>.
    /// Values travel in the client's environment (<c>-e NAME</c>), not on its command line.
    /// </summary>
    private static ProcessStartInfo ContainerStart(string name, string id, ContainerImage image, string[] networkArguments, Dictionary<string, string> env)
    {
        var start = new ProcessStartInfo(image.Engine);
        foreach (var arg in (string[])["run", "--rm", "--name", name, "--label", $"upload-instance={id}", .. networkArguments])
            start.ArgumentList.Add(arg);
        foreach (var (key, value) in env)
        {
            start.ArgumentList.Add("-e");
            start.ArgumentList.Add(key);
            start.Environment[key] = value;
        }
        start.ArgumentList.Add(image.Tag);
        return start;
    }

    /// <summary>The container's address on the network, once the engine has given it one (polled: <c>run</c> does not say).</summary>
    private static async Task<IPEndPoint> AddressAsync(ContainerImage image, string name, ILogger log, CancellationToken exited)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            string? address = null;
            await image.RunAsync(["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name],
                NullLogger.Instance, exited, output: line => address ??= line.Trim());
            if (IPAddress.TryParse(address, out var ip)) return new IPEndPoint(ip, ContainerPort);
            await Task.Delay(TimeSpan.FromMilliseconds(100), exited);
        }
        log.LogWarning("{Name} got no address on the network within 60 s", name);
        throw new TimeoutException($"{name} got no address on the network.");
    }

    /// <summary>Sends a signal to the instance (15 = SIGTERM, 9 = SIGKILL, …); nothing once it has exited.</summary>
    public void Signal(int signal)
    {
        if (HasExited) return;
        if (_settings.Image is { } image)
        {
            // Through the engine: a SIGKILL to the attached client would not reach the container.
            _ = image.RunAsync(["kill", "--signal", signal.ToString(CultureInfo.InvariantCulture), ContainerName], _log);
            return;
        }
        if (Kill(ProcessId, signal) != 0)
        {
            _log.LogWarning("signal {Signal} to pid {Pid} failed (errno {Errno})", signal, ProcessId, Marshal.GetLastPInvokeError());
        }
    }

    private async Task<int> WatchAsync()
    {
        await _process.WaitForExitAsync();
        var code = _process.ExitCode;
        _process.Dispose();
        await _exited.CancelAsync();
        _exited.Dispose();
        if (_relay is not null) await _relay.DisposeAsync();
        if (_settings.Image is null)
        {
            // The container's disk goes with it; here that is the instance's data directory.
            try { Directory.Delete(DataDirectory, recursive: true); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                _log.LogWarning("could not delete {Directory}: {Message}", DataDirectory, ex.Message);
            }
        }
        return code;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
