using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Bench;

/// <summary>A process the benchmark starts (upload service, peer, wrangler, AppHost); stopped with SIGINT/SIGTERM, then SIGKILL.</summary>
public sealed class Child : IAsyncDisposable
{
    static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(15);
    readonly Process process;
    readonly string name;
    readonly List<string> tail = [];
    bool stopped;

    public int Pid => process.Id;
    public string Name => name;
    public bool Exited => process.HasExited;

    Child(Process process, string name)
    {
        this.process = process;
        this.name = name;
    }

    public static Child Start(string name, string fileName, IEnumerable<string> args, string workingDirectory,
        IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
        var process = Process.Start(info) ?? throw new InvalidOperationException($"{name}: could not start {fileName}");
        process.StandardInput.Close();   // headless: wrangler and friends get no interactive input
        var child = new Child(process, name);
        process.OutputDataReceived += (_, e) => child.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => child.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    void Keep(string? line)
    {
        if (line is null) return;
        lock (tail)
        {
            tail.Add(line);
            if (tail.Count > 40) tail.RemoveAt(0);
        }
    }

    public string Tail()
    {
        lock (tail) return string.Join('\n', tail);
    }

    /// <summary>
    /// Polls <paramref name="probe"/> (every 50 ms, or <paramref name="every"/>) until it answers true, the process
    /// exits, or the deadline passes.
    /// </summary>
    public async Task<TimeSpan> WaitReady(Func<Task<bool>> probe, TimeSpan timeout, TimeSpan? every = null)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (process.HasExited) throw new InvalidOperationException($"{name} exited with {process.ExitCode}:\n{Tail()}");
            try
            {
                if (await probe()) return clock.Elapsed;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(every ?? TimeSpan.FromMilliseconds(50));
        }
        throw new TimeoutException($"{name} not ready after {timeout.TotalSeconds:0} s:\n{Tail()}");
    }

    /// <summary>Resident set size now, from /proc (bytes); 0 once the process is gone.</summary>
    public long Rss() => ReadRss(Pid);

    public static long ReadRss(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
        catch (IOException) { }
        return 0;
    }

    /// <summary>Waits for the process to exit on its own; kills it (and throws) past the timeout.</summary>
    public async Task<int> WaitExit(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
            return process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{name} still running after {timeout.TotalSeconds:0} s:\n{Tail()}");
        }
    }

    public ValueTask DisposeAsync() => Stop(Sigint);

    /// <summary>Sends <paramref name="signal"/>, waits a grace period, then kills the whole tree.</summary>
    public async ValueTask Stop(int signal)
    {
        if (stopped) return;
        stopped = true;
        if (process.HasExited)
        {
            process.Dispose();
            return;
        }
        Signal(process.Id, signal);
        using var grace = new CancellationTokenSource(StopGrace);
        try
        {
            await process.WaitForExitAsync(grace.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        process.Dispose();
    }

    public const int Sigint = 2;
    public const int Sigterm = 15;

    public static void Signal(int pid, int signal) => _ = kill(pid, signal);

    [DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int sig);
}

public static class Ports
{
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>Samples a process's RSS every few milliseconds while a case runs; keeps the peak.</summary>
public sealed class RssSampler : IAsyncDisposable
{
    readonly CancellationTokenSource stop = new();
    readonly Task loop;
    public long Peak { get; private set; }

    public RssSampler(int pid)
    {
        loop = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                Peak = Math.Max(Peak, Child.ReadRss(pid));
                try { await Task.Delay(20, stop.Token); } catch (OperationCanceledException) { }
            }
        });
    }

    public async ValueTask DisposeAsync()
    {
        stop.Cancel();
        await loop;
        stop.Dispose();
    }
}
