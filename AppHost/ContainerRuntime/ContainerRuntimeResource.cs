using System.ComponentModel;
using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Aspire.Hosting.ApplicationModel;

/// <summary>
/// The local container runtime (see <see cref="ContainerRuntimeExtensions"/>): in the dashboard, the parent of
/// every upload-service instance the Durable Objects start.
/// </summary>
public sealed class ContainerRuntimeResource(string name, ContainerRuntimeSettings settings) : Resource(name)
{
    /// <summary>What it starts; with <see cref="ContainerRuntimeSettings.ImageIfEngineAnswers"/>, settled when it starts.</summary>
    public ContainerRuntimeSettings Settings { get; internal set; } = settings;

    /// <summary>The key the Worker's requests carry (<c>Authorization: Bearer …</c>); new for each run.</summary>
    public string Token { get; } = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));

    /// <summary>Where the control API listens (loopback), once the runtime has started.</summary>
    public Uri? Url { get; internal set; }

    /// <summary>The Worker on loopback, where the relay of container mode sends instances' outbound requests.</summary>
    public ReferenceExpression? WorkerUrl { get; internal set; }

    /// <summary>In container mode, where instances reach <see cref="WorkerUrl"/>'s outbound route (see <see cref="InstanceNetwork"/>), once started.</summary>
    public string? OutboundUrl { get; internal set; }

    /// <summary>The dashboard commands each instance gets, once the Worker that serves the admin API is known.</summary>
    public AdminApiCommands? Commands { get; internal set; }
}

/// <summary>What the runtime starts and how many at once.</summary>
/// <param name="UploadServiceDll">The built upload service that each instance runs as a process.</param>
/// <param name="Image">In container mode, the image each instance is a container of (else null: processes).</param>
/// <param name="ImageIfEngineAnswers">
/// <c>auto</c>: the image only if its engine answers when the runtime starts, else processes.</param>
/// <param name="InstancesRoot">Each process's data directory is made here and deleted when it exits.</param>
/// <param name="WranglerToml">Where <c>max_instances</c> is read from, unless <paramref name="MaxInstances"/> overrides it.</param>
/// <param name="MaxInstances"><c>Containers:MaxInstances</c>, or null for the TOML's value.</param>
/// <param name="SleepAfter"><c>Containers:SleepAfter</c> (e.g. <c>30s</c>), or null for the class's <c>sleepAfter</c>.</param>
public sealed record ContainerRuntimeSettings(
    string UploadServiceDll, ContainerImage? Image, bool ImageIfEngineAnswers, string InstancesRoot, string WranglerToml,
    int? MaxInstances, string? SleepAfter);

/// <summary>The image built from <paramref name="Dockerfile"/> in <paramref name="Context"/> as <paramref name="Tag"/>, by <paramref name="Engine"/> (docker or podman).</summary>
public sealed record ContainerImage(string Engine, string Dockerfile, string Context, string Tag)
{
    /// <summary>Whether the engine answers <c>{Engine} info</c> within <paramref name="timeout"/>, and what it said.</summary>
    public async Task<(bool Answers, string Why)> EngineAnswersAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            var code = await RunAsync(["info"], NullLogger.Instance, deadline.Token, output: _ => { });
            return code == 0 ? (true, $"`{Engine} info` answered") : (false, $"`{Engine} info` exited with {code}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (false, $"`{Engine} info` did not answer within {timeout.TotalSeconds:0} s");
        }
        catch (Win32Exception)
        {
            return (false, $"`{Engine}` is not installed");
        }
    }

    /// <summary>
    /// Runs <c>{Engine} {args}</c> in <see cref="Context"/> and returns its exit code; each line of its output goes to
    /// <paramref name="output"/> if given, else to <paramref name="log"/>, and its errors to <paramref name="log"/>.
    /// </summary>
    public Task<int> RunAsync(string[] args, ILogger log, CancellationToken cancellationToken = default, Action<string>? output = null) =>
        RunAsync(Engine, args, Context, log, cancellationToken, output);

    /// <summary>Runs <paramref name="program"/> with <paramref name="args"/> in <paramref name="directory"/> (see the overload above).</summary>
    internal static async Task<int> RunAsync(string program, string[] args, string directory, ILogger log,
        CancellationToken cancellationToken = default, Action<string>? output = null)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = directory,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true, // nothing it runs reads from the AppHost's console
        };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, line) => { if (line.Data is { } text) { if (output is null) log.LogInformation("{Line}", text); else output(text); } };
        process.ErrorDataReceived += (_, line) => { if (line.Data is { } text) log.LogInformation("{Line}", text); };
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (Exception kill) when (kill is InvalidOperationException or AggregateException or Win32Exception) { }
            throw;
        }
        return process.ExitCode;
    }
}
