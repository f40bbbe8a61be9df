using System.Text;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Aspire.Hosting;

// Wiring for the TypeScript Worker in worker/: an install step, then `wrangler dev` through the worker's
// own npm script (scripts/dev.sh), which hands the environment the AppHost sets to the Worker in an env file
// only this user can read (not as flags: a command line is visible to every local user).
public static class WorkerExtensions
{
    private const int DefaultWorkerPort = 8787;

    /// <summary>The user the dashboard's signed-in link and the "Mint dev token" command are for.</summary>
    public const string DevUser = "dev";

    private static readonly TimeSpan DevTokenLifetime = TimeSpan.FromHours(24);

    /// <summary>Runs `npm install` in worker/ and then `npm run dev` (wrangler dev) once it has finished.</summary>
    public static IResourceBuilder<ExecutableResource> AddWorker(this IDistributedApplicationBuilder builder, string name)
    {
        if (!IsOnPath("npm"))
        {
            throw new AppHostSetupException("'npm' was not found on PATH. Node.js with npm is needed to run the Worker (wrangler dev). Install Node.js 20 or newer.");
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

    /// <summary>
    /// The upload page in the dashboard: the endpoint's URL labelled as the page, a link that opens it signed
    /// in as <see cref="DevUser"/> (token in the URL fragment, which the browser never sends), and a
    /// "Mint dev token" command that writes a fresh token to the resource's log.
    /// </summary>
    public static IResourceBuilder<ExecutableResource> WithUploadPage(
        this IResourceBuilder<ExecutableResource> worker, IResourceBuilder<ParameterResource> authSecret)
    {
        worker.WithUrlForEndpoint("http", url => url.DisplayText = "Upload page");
        worker.WithUrls(async context =>
        {
            var page = context.Urls.FirstOrDefault(url => url.Endpoint?.EndpointName == "http");
            if (page is null) return;
            var token = await MintDevTokenAsync(authSecret, context.CancellationToken);
            context.Urls.Add(new ResourceUrlAnnotation
            {
                Url = $"{page.Url.TrimEnd('/')}/#token={token}",
                DisplayText = $"Upload page (signed in as {DevUser})",
                Endpoint = page.Endpoint,
            });
        });
        worker.WithCommand("mint-dev-token", "Mint dev token", async context =>
        {
            var token = await MintDevTokenAsync(authSecret, context.CancellationToken);
            var log = context.Services.GetRequiredService<ResourceLoggerService>().GetLogger(worker.Resource);
            log.LogInformation("Token for user '{User}', valid for {Hours} h: {Token}", DevUser, DevTokenLifetime.TotalHours, token);
            return CommandResults.Success();
        }, new CommandOptions
        {
            Description = $"Writes a bearer token for user '{DevUser}' to the worker's console log.",
            IconName = "Key",
        });
        return worker;
    }

    private static async Task<string> MintDevTokenAsync(IResourceBuilder<ParameterResource> authSecret, CancellationToken cancellationToken)
    {
        var secret = await authSecret.Resource.GetValueAsync(cancellationToken)
            ?? throw new InvalidOperationException("The auth-secret parameter has no value.");
        return UserTokens.Create(secret, DevUser, DevTokenLifetime);
    }

    /// <summary>The Worker's public port: fixed at 8787 by default so curl commands and docs stay stable.</summary>
    public static int WorkerPort(this IDistributedApplicationBuilder builder) =>
        builder.Configuration.GetValue("Worker:Port", DefaultWorkerPort);

    private static bool IsOnPath(string command) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, command)));
}
