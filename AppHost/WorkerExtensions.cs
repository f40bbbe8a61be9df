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
        if (!IsOnPath("npm"))
        {
            AppHostExtensions.ExitWithError("'npm' was not found on PATH. Node.js with npm is needed to run the Worker (wrangler dev). Install Node.js 20 or newer.");
        }

        var workerDirectory = Path.Combine(builder.RepositoryRoot(), "worker");

        // npm brings Node 22 (the `node` devDependency) for wrangler; an up-to-date install is a quick no-op.
        var install = builder.AddExecutable($"{name}-install", "npm", workerDirectory,
                "install", "--no-audit", "--no-fund", "--loglevel=warn")
            .ExcludeFromManifest();

        var worker = builder.AddExecutable(name, "npm", workerDirectory, "run", "--silent", "dev")
            .WithEnvironment("WRANGLER_PERSIST_DIR", builder.LocalDataPath("wrangler"))
            .WaitForCompletion(install);
        install.WithParentRelationship(worker);
        return worker;
    }

    /// <summary>The Worker's public port: fixed at 8787 by default so curl commands and docs stay stable.</summary>
    public static int WorkerPort(this IDistributedApplicationBuilder builder) =>
        builder.Configuration.GetValue("Worker:Port", DefaultWorkerPort);

    private static bool IsOnPath(string command) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, command)));
}
