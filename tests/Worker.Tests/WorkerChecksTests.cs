namespace Worker.Tests;

/// <summary>
/// Checks of the worker that are not vitest tests: strict TypeScript, the deployable wrangler.toml, and the
/// committed Env types generated from it.
/// </summary>
public sealed class WorkerChecksTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public void TypeScript_compiles_strict_with_no_errors()
    {
        Npm.EnsureInstalled();
        Npm.Run(Timeout, "run", "check").ThrowIfFailed();
    }

    [Fact]
    public void Wrangler_toml_validates_for_deploy_without_warnings_and_the_bundle_holds_no_local_stand_in()
    {
        // `wrangler deploy --dry-run` checks the whole TOML offline, including the [[containers]] to
        // Durable Object cross-checks; a misspelled key is only a warning there, so warnings fail here.
        Npm.EnsureInstalled();
        var outDir = Directory.CreateTempSubdirectory("wrangler-dry-run-");
        try
        {
            var result = Npm.Run(Timeout, "exec", "--", "wrangler", "deploy", "--dry-run",
                "--containers-rollout=none", "--outdir", outDir.FullName).ThrowIfFailed();
            Assert.DoesNotContain("[WARNING]", result.Output);
            Assert.Contains("USER_CONTAINERS", result.Output);
            // What deploys is src/index.ts: the local stand-ins for ctx.container (src/dev/) are not in it.
            var bundle = string.Concat(outDir.EnumerateFiles("*.js", SearchOption.AllDirectories).Select(f => File.ReadAllText(f.FullName)));
            Assert.Contains("UserAppContainer = class extends Container", bundle);
            Assert.DoesNotContain("RuntimeContainer", bundle);
            Assert.DoesNotContain("SharedContainer", bundle);
            Assert.DoesNotContain("CONTAINER_RUNTIME_URL", bundle);
        }
        finally
        {
            outDir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Generated_env_types_match_wrangler_toml()
    {
        // `wrangler types --check` regenerates the Env interface from the TOML in memory and fails when the
        // committed worker-configuration.d.ts differs: run `npm run types` after changing bindings.
        Npm.EnsureInstalled();
        var result = Npm.Run(Timeout, "exec", "--", "wrangler", "types", "--check");
        Assert.True(result.ExitCode == 0,
            $"worker-configuration.d.ts does not match wrangler.toml; run `npm run types` in worker/.\n{result.Output}");
    }
}
