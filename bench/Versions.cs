using System.Diagnostics;
using System.Text.Json;

namespace Bench;

/// <summary>What was measured: the commit the service was built from, and the peer's and wrangler's versions.</summary>
static class Versions
{
    public static string Describe(string repo)
    {
        var commit = Run(repo, "git", "rev-parse", "--short", "HEAD") ?? "unknown commit";
        var dirty = Run(repo, "git", "status", "--porcelain", "--untracked-files=no") is { Length: > 0 } ? " plus uncommitted changes" : "";
        var node = Run(repo, Stack.Node(repo), "--version") ?? "unknown";
        return $"built from {commit}{dirty}; peer: @tus/server {Package(repo, "bench/peer/node_modules/@tus/server")}" +
            $" + @tus/file-store {Package(repo, "bench/peer/node_modules/@tus/file-store")} on Node {node};" +
            $" wrangler {Package(repo, "worker/node_modules/wrangler")}";
    }

    static string Package(string repo, string folder)
    {
        var file = Path.Combine(repo, folder, "package.json");
        if (!File.Exists(file)) return "(not installed)";
        using var json = JsonDocument.Parse(File.ReadAllText(file));
        return json.RootElement.TryGetProperty("version", out var version) ? version.GetString() ?? "?" : "?";
    }

    /// <summary>A command's trimmed output, or null when it cannot start, fails or takes over 10 s.</summary>
    public static string? Run(string cwd, string file, params string[] args)
    {
        try
        {
            var info = new ProcessStartInfo(file) { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in args) info.ArgumentList.Add(arg);
            using var process = Process.Start(info);
            if (process is null) return null;
            var output = process.StandardOutput.ReadToEnd();
            return process.WaitForExit(10_000) && process.ExitCode == 0 ? output.Trim() : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
