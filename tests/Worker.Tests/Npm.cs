using System.Diagnostics;

namespace Worker.Tests;

/// <summary>Runs npm in worker/ with no standard input, the way CI and the AppHost run it.</summary>
public static class Npm
{
    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(5);
    private static readonly Lazy<bool> Installed = new(() =>
    {
        // CI (and a developer who ran the AppHost) already installed: then npm is not started at all, so
        // this never races the AppHost's own install step, which the integration tests run in parallel.
        if (!IsInstallCurrent())
        {
            Run(InstallTimeout, "install", "--no-audit", "--no-fund", "--loglevel=warn").ThrowIfFailed();
        }
        return true;
    });

    public static string WorkerDirectory { get; } = FindWorkerDirectory();

    public sealed record Result(string Command, int ExitCode, string Output)
    {
        public Result ThrowIfFailed() =>
            ExitCode == 0 ? this : throw new InvalidOperationException($"{Command} exited with {ExitCode}:\n{Output}");
    }

    public static void EnsureInstalled() => _ = Installed.Value;

    public static Result Run(TimeSpan timeout, params string[] args)
    {
        var start = new ProcessStartInfo("npm")
        {
            WorkingDirectory = WorkerDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        start.Environment["CI"] = "true";
        start.Environment["WRANGLER_SEND_METRICS"] = "false";
        start.Environment["CLOUDFLARE_CF_FETCH_ENABLED"] = "false";

        var command = $"npm {string.Join(' ', args)}";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{command} did not start");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{command} did not finish within {timeout}");
        }
        return new Result(command, process.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>npm writes node_modules/.package-lock.json on every install; newer than the lockfile = current.</summary>
    private static bool IsInstallCurrent()
    {
        var installed = new FileInfo(Path.Combine(WorkerDirectory, "node_modules", ".package-lock.json"));
        var wanted = new FileInfo(Path.Combine(WorkerDirectory, "package-lock.json"));
        return installed.Exists && installed.LastWriteTimeUtc >= wanted.LastWriteTimeUtc;
    }

    private static string FindWorkerDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "worker", "package.json");
            if (File.Exists(candidate)) return Path.GetDirectoryName(candidate)!;
        }
        throw new DirectoryNotFoundException("worker/package.json not found above " + AppContext.BaseDirectory);
    }
}
