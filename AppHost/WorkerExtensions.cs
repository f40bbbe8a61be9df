using Microsoft.Extensions.Configuration;

namespace Aspire.Hosting;

// Wiring for the TypeScript Worker in worker/: an install step, then `wrangler dev` through the worker's
// own npm script (scripts/dev.sh), which turns the environment the AppHost sets into `--var` flags.
public static class WorkerExtensions
{
    private const int DefaultWorkerPort = 8787;

    /// <summary>Runs `npm install` in worker/ and then `npm run dev` (wrangler dev) once it has finished.</summary>
    public static IResourceBuilder<ExecutableResource> AddWorker(this IDistributedApplicationBuilder builder, string name)
    {
        RequireOnPath("npm", "Node.js with npm is needed to run the Worker (wrangler dev). Install Node.js 20 or newer.");

        var workerDirectory = Path.Combine(builder.RepositoryRoot(), "worker");

        // npm brings Node 22 (the `node` devDependency) for wrangler; an up-to-date install is a quick no-op.
        var install = builder.AddExecutable($"{name}-install", "npm", workerDirectory,
                "install", "--no-audit", "--no-fund", "--loglevel=warn")
            .ExcludeFromManifest();

        return builder.AddExecutable(name, "npm", workerDirectory, "run", "--silent", "dev")
            .WithEnvironment("WRANGLER_PERSIST_DIR", builder.LocalDataPath("wrangler"))
            .WaitForCompletion(install);
    }

    /// <summary>The Worker's public port: fixed at 8787 by default so curl commands and docs stay stable.</summary>
    public static int WorkerPort(this IDistributedApplicationBuilder builder) =>
        builder.Configuration.GetValue("Worker:Port", DefaultWorkerPort);

    /// <summary>
    /// A folder for data that outlives a run (uploaded files, Durable Object state), under `.data/` at the
    /// repository root (ignored by git) unless `LocalData:Root` points elsewhere.
    /// </summary>
    public static string LocalDataPath(this IDistributedApplicationBuilder builder, string name)
    {
        var root = builder.Configuration["LocalData:Root"] ?? Path.Combine(builder.RepositoryRoot(), ".data");
        var path = Path.GetFullPath(Path.Combine(root, name));
        Directory.CreateDirectory(path);
        return path;
    }

    private static string RepositoryRoot(this IDistributedApplicationBuilder builder) =>
        Path.GetFullPath(Path.Combine(builder.AppHostDirectory, ".."));

    private static void RequireOnPath(string command, string hint)
    {
        var found = (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, command)));
        if (!found)
        {
            Console.Error.WriteLine($"error: '{command}' was not found on PATH. {hint}");
            Environment.Exit(1);
        }
    }
}
