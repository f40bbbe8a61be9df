using System.Diagnostics;

namespace Integration.Tests;

/// <summary>
/// The Node helpers in tus-client/ (tus-js-client for TusJsClientTests, playwright-core driving Debian's
/// Chromium for UploadPageTests): one folder, one install, one way to run a script and collect its output.
/// </summary>
public static class NodeClients
{
    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(3);
    private static readonly string[] RequiredPackages = ["tus-js-client", "playwright-core"];
    private static readonly Lazy<string> Directory = new(FindAndInstall);

    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static async Task<Result> RunAsync(string script, IReadOnlyDictionary<string, string> environment, TimeSpan timeout, params string[] args)
    {
        var start = new ProcessStartInfo("node")
        {
            WorkingDirectory = Directory.Value,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        start.ArgumentList.Add(script);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        foreach (var (name, value) in environment) start.Environment[name] = value;

        using var process = Process.Start(start) ?? throw new InvalidOperationException("node did not start");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{script} did not finish within {timeout}: {await stderr}");
        }

        return new Result(process.ExitCode, await stdout, await stderr);
    }

    private static string FindAndInstall()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "Integration.Tests", "tus-client");
            if (File.Exists(Path.Combine(candidate, "package.json")))
            {
                // .ci/run installs it; a developer's first run does it here.
                if (!RequiredPackages.All(package => File.Exists(Path.Combine(candidate, "node_modules", package, "package.json"))))
                {
                    var npm = new ProcessStartInfo("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=warn"])
                    {
                        WorkingDirectory = candidate,
                        RedirectStandardInput = true,
                    };
                    using var process = Process.Start(npm)!;
                    process.StandardInput.Close();
                    if (!process.WaitForExit(InstallTimeout) || process.ExitCode != 0)
                    {
                        throw new InvalidOperationException("npm ci in tests/Integration.Tests/tus-client failed");
                    }
                }

                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/Integration.Tests/tus-client not found above " + AppContext.BaseDirectory);
    }
}
