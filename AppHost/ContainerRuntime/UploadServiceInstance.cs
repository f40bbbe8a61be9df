using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Logging;

namespace Aspire.Hosting;

/// <summary>One Durable Object's instance of the upload service: a process started with the environment the
/// object passed to start(), on its own loopback port, with a data directory of its own that goes when it exits.</summary>
internal sealed class UploadServiceInstance
{
    /// <summary>The port the image serves on (ASPNETCORE_HTTP_PORTS in the Dockerfile, defaultPort in the Durable Object).</summary>
    public const int ContainerPort = 8000;

    private readonly Process _process;
    private readonly ILogger _log;

    private UploadServiceInstance(string id, string user, string durableObjectId, int port, string dataDirectory, Process process, ILogger log)
    {
        Id = id;
        User = user;
        DurableObjectId = durableObjectId;
        Port = port;
        DataDirectory = dataDirectory;
        _process = process;
        ProcessId = process.Id;
        Resource = new UserContainerResource(id);
        _log = log;
        Exited = WatchAsync();
    }

    /// <summary>Unique among all instances of this run, e.g. <c>alice-2</c>: the dashboard row and <c>service.instance.id</c>.</summary>
    public string Id { get; }
    public string User { get; }
    public string DurableObjectId { get; }
    /// <summary>The loopback port <see cref="ContainerPort"/> is published on.</summary>
    public int Port { get; }
    public string DataDirectory { get; }
    public int ProcessId { get; }
    public DateTime StartedAt { get; } = DateTime.UtcNow;

    /// <summary>The instance's row in the dashboard, named by its id (one object per row).</summary>
    public UserContainerResource Resource { get; }

    /// <summary>The exit code once the process has exited (128 + the signal's number when a signal ended it).</summary>
    public Task<int> Exited { get; }
    public bool HasExited => Exited.IsCompleted;

    /// <summary>
    /// Runs <c>dotnet UploadService.dll</c> in its output folder, as the image's entrypoint does in /app. The
    /// environment is a container's: a plain PATH and HOME, the image's own ENV (the data directory as
    /// <c>Storage__Root</c>), then everything the Durable Object passed; the runtime adds only the port mapping
    /// (<c>ASPNETCORE_URLS</c>, which takes precedence over the image's ASPNETCORE_HTTP_PORTS) and the instance's
    /// id for telemetry. Nothing of the AppHost's own environment reaches it.
    /// </summary>
    public static UploadServiceInstance Start(
        string id, string user, string durableObjectId, IReadOnlyDictionary<string, string> env,
        string dll, string dataDirectory, int port, ILogger log)
    {
        var home = Path.Combine(dataDirectory, "home");
        var data = Path.Combine(dataDirectory, "data");
        Directory.CreateDirectory(home);
        Directory.CreateDirectory(data);

        var start = new ProcessStartInfo(DotnetHost())
        {
            WorkingDirectory = Path.GetDirectoryName(dll)!,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(dll);
        start.Environment.Clear();
        start.Environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        start.Environment["HOME"] = home;
        start.Environment["ASPNETCORE_HTTP_PORTS"] = ContainerPort.ToString(CultureInfo.InvariantCulture);
        start.Environment["Storage__Root"] = data;
        foreach (var (key, value) in env)
        {
            start.Environment[key] = value;
        }
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        var instanceAttribute = $"service.instance.id={id}";
        start.Environment["OTEL_RESOURCE_ATTRIBUTES"] = env.TryGetValue("OTEL_RESOURCE_ATTRIBUTES", out var attributes) && attributes.Length > 0
            ? $"{attributes},{instanceAttribute}"
            : instanceAttribute;

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, line) => { if (line.Data is not null) log.LogInformation("{Line}", line.Data); };
        process.ErrorDataReceived += (_, line) => { if (line.Data is not null) log.LogError("{Line}", line.Data); };
        process.Start();
        process.StandardInput.Close(); // a container started without -i has no input
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new UploadServiceInstance(id, user, durableObjectId, port, dataDirectory, process, log);
    }

    /// <summary>Sends a signal to the process (15 = SIGTERM, 9 = SIGKILL, …); nothing once it has exited.</summary>
    public void Signal(int signal)
    {
        if (HasExited) return;
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
        // The container's disk goes with it.
        try { Directory.Delete(DataDirectory, recursive: true); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _log.LogWarning("could not delete {Directory}: {Message}", DataDirectory, ex.Message);
        }
        return code;
    }

    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
