// The benchmark (issue 6): upload speed, memory and start-up of the upload service, side by side with the
// machine's own ceilings, a peer tus server (@tus/server + @tus/file-store) and the bare Workers runtime.
//   dotnet run -c Release --project bench -- [--quick] [--no-wrangler] [--no-apphost] [--no-tests] [--only GROUPS] [--note TEXT]
// Full run: prints the table and writes bench/results.md + bench/results.png.
// --quick: small sizes, one run each, no AppHost start-up or integration tests; a smoke pass (CI) that asserts nothing about speed;
//          writes bench/quick/ (ignored by git) so it never overwrites the committed results.
// --only cold,ceilings,uploads,downloads,small,startup,s3: just those groups (cold is the service's own cold start beside the
//          peer's and the floor's; downloads read what uploads stored; startup is the AppHost start-up and the per-user
//          wakes; s3 is the rows of the s3 backend's targets alone), for profiling one case; also writes bench/quick/.
// The service runs as its Native AOT binary (published at the start of the run, as the image builds it; needs clang)
// with its JIT build beside it in the rows marked JIT; --quick runs the JIT build only.
using System.Diagnostics;
using Bench;

var options = Options.Parse(args);
// The disk ceilings block a thread per concurrent write (fsync); the HTTP clients need none. As many
// threads at hand as the highest concurrency, so the ceiling is not the thread pool's slow growth.
ThreadPool.GetMinThreads(out var minWorkers, out var minIo);
ThreadPool.SetMinThreads(Math.Max(minWorkers, 64), minIo);
var repo = Options.RepositoryRoot();
var wall = Stopwatch.StartNew();
var machine = Machine.Read();
var plan = options.Quick ? Plan.Quick : Plan.Full;
var report = new Report();
var outDir = options.Quick || options.Only is not null ? Path.Combine(repo, "bench", "quick") : Path.Combine(repo, "bench");
Directory.CreateDirectory(outDir);

Console.WriteLine($"bench{(options.Quick ? " --quick" : "")}: {string.Join("; ", machine.Describe())}");
if (options.Quick) report.Notes.Add("quick mode: small sizes, few runs: a smoke pass that keeps the command working, not figures to compare");
if (options.Note is { } note) report.Notes.Add(note);
if (double.TryParse(machine.LoadAtStart.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture, out var load1)
    && load1 > machine.Cores * 0.5)
    report.Notes.Add($"the machine was busy when the run started (1-minute load {load1:0.0} on {machine.Cores} cores): other processes competed for CPU and disk, so absolute figures are low and noisy; ratios within the run are the figures to read");

report.Facts.Add(Versions.Describe(repo));
var work = Directory.CreateTempSubdirectory("upload-bench-");
Console.WriteLine($"working directory (service storage, peer store, ceilings; same disk): {work.FullName}");
var http = Client.CreateHttp();
var client = new Client(http);
var builds = await ServiceBuilds.Prepare(repo, work.FullName, options.Quick, report);
var stack = new Stack(repo, work.FullName, http, builds);
var exitCode = 0;
// Ctrl+C or SIGTERM: stop the servers this run started (wrangler takes its workerd down) before exiting.
using var onInterrupt = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, Interrupted);
using var onTerminate = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, Interrupted);
void Interrupted(System.Runtime.InteropServices.PosixSignalContext context)
{
    context.Cancel = true;
    Console.Error.WriteLine($"bench: {context.Signal}, stopping what it started");
    stack.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(30));
    try { work.Delete(recursive: true); } catch (IOException) { }
    Environment.Exit(130);
}
try
{
    // Cold starts first, on a quiet machine: nothing else of the run is started yet.
    if (options.Runs("cold"))
    {
        await new ColdStarts(builds, plan, report, repo, work.FullName).Run();
        ImageSize.Measure(repo, report);
    }
    await stack.Start(withWrangler: !options.NoWrangler, report);
    await stack.StartS3(report);
    await stack.StartR2(withWrangler: !options.NoWrangler && !options.Quick, report);
    await stack.StartJit(report);
    var runner = new Runner(client, stack, plan, report, work.FullName, options.RunsPath);
    if (options.Runs("ceilings")) await runner.Ceilings();
    // Small files before the large cases: those free many inodes (s3rver deletes every multipart part), and
    // on ext4 without a journal the file creations after such a purge are slow for minutes, which would
    // measure the leftovers of the earlier cases instead of the servers.
    if (options.Runs("small")) await runner.SmallFiles();
    if (options.Runs("uploads")) await runner.Uploads();
    if (options.Runs("downloads")) await runner.Downloads();
    await stack.DisposeAsync();
    if (options.Quick || options.NoAppHost || !options.Runs("startup")) report.Skip("AppHost start-up", options.Quick ? "not in --quick" : options.NoAppHost ? "--no-apphost" : "--only");
    else await runner.AppHostStartup(repo);
    if (options.Quick || options.NoTests || options.Only is not null) report.Skip("integration test suite wall time", options.Quick ? "not in --quick" : options.Only is not null ? "--only" : "--no-tests");
    else await runner.IntegrationTests(repo);
    runner.ComputeRatios();
}
catch (Exception error)
{
    Console.Error.WriteLine($"bench failed: {error}");
    exitCode = 1;
}
finally
{
    await stack.DisposeAsync();
    http.Dispose();
    try { work.Delete(recursive: true); } catch (IOException) { }
}

machine.LoadAtEnd = Machine.LoadAverage();
Console.WriteLine();
Console.WriteLine("targets (ratios from this run):");
foreach (var r in report.Ratios)
    Console.WriteLine($"  {r.Target,-58} {(r.Value is { } v ? v.ToString("0.00") : "—"),6}  {(r.IsTarget ? "goal " : "")}{r.GoalText}  {r.Verdict}{(r.Note.Length > 0 ? $"  ({r.Note})" : "")}");
var markdown = Path.Combine(outDir, "results.md");
var chart = Path.Combine(outDir, "results.png");
report.WriteMarkdown(markdown, machine, options.Quick, wall.Elapsed);
try
{
    report.WriteChart(chart, $"Throughput against file size, {machine.Cores} cores{(options.Quick ? " (quick)" : "")}");
}
catch (Exception error) when (error is DllNotFoundException or TypeInitializationException)
{
    Console.Error.WriteLine($"chart not drawn: {error.Message}");
    exitCode = 1;
}
Console.WriteLine($"wrote {Path.GetRelativePath(repo, markdown)} and {Path.GetRelativePath(repo, chart)} in {wall.Elapsed.TotalSeconds:0} s");
return exitCode;

sealed record Options(bool Quick, bool NoWrangler, bool NoAppHost, bool NoTests, string[]? Only, string? Note)
{
    static readonly string[] Groups = ["cold", "ceilings", "uploads", "downloads", "small", "startup", "s3"];

    /// <summary>s3 is the rows of the s3 backend's targets (issue 19), out of the ceilings, small files and uploads.</summary>
    public bool Runs(string group) =>
        Only is null || Only.Contains(group) || (Only.Contains("s3") && group is "ceilings" or "small" or "uploads");

    /// <summary>Whether a case's row runs: every row of a group that runs, or with s3 only the rows of its targets.</summary>
    public bool RunsPath(string path) => Only is null || !Only.Contains("s3") || Runner.S3Paths.Contains(path)
        || Only.Any(group => group != "s3");

    public static Options Parse(string[] args)
    {
        const string usage = "use [--quick] [--no-wrangler] [--no-apphost] [--no-tests] [--only cold,ceilings,uploads,downloads,small,startup,s3] [--note TEXT]";
        string? note = null;
        string[]? only = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick" or "--no-wrangler" or "--no-apphost" or "--no-tests": break;
                case "--note" when i + 1 < args.Length: note = args[++i]; break;
                case "--only" when i + 1 < args.Length:
                    only = args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    if (only.FirstOrDefault(g => !Groups.Contains(g)) is { } unknown)
                        throw new ArgumentException($"unknown group {unknown}; {usage}");
                    break;
                default: throw new ArgumentException($"unknown argument {args[i]}; {usage}");
            }
        }
        return new Options(args.Contains("--quick"), args.Contains("--no-wrangler"), args.Contains("--no-apphost"), args.Contains("--no-tests"), only, note);
    }

    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Solution.sln"))) return dir.FullName;
        throw new InvalidOperationException("run from inside the repository (no Solution.sln above the current directory)");
    }
}

/// <summary>
/// Sizes and repetitions. Every large case runs once as a warm-up on each path's first size, then Runs times; every
/// small-file case runs untimed for SmallWarmUp first, then Runs times SmallUploads. That warm-up is long because the
/// servers compile their hot paths while they serve: the service's tiered JIT recompiled ~4,500 methods in its first
/// ~10 s of 4 KiB tus uploads (through its instrumented PGO tiers), and V8 tiers up too; a few dozen uploads measured
/// the compiling, not the server.
/// </summary>
sealed record Plan(long[] Sizes, int Runs, int SmallUploads, TimeSpan SmallWarmUp, int[] Concurrency, int RangeReads, int ColdStarts)
{
    public static readonly Plan Full = new([1L << 20, 64L << 20, 1L << 30], Runs: 3, SmallUploads: 1000, SmallWarmUp: TimeSpan.FromSeconds(5), Concurrency: [1, 8, 32], RangeReads: 20, ColdStarts: 10);
    public static readonly Plan Quick = new([1L << 20, 8L << 20], Runs: 1, SmallUploads: 32, SmallWarmUp: TimeSpan.FromSeconds(0.2), Concurrency: [1, 8, 32], RangeReads: 3, ColdStarts: 2);
    public long Largest => Sizes[^1];
}
