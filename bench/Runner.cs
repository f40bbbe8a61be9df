using System.Security.Cryptography;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using Aspire.Hosting;

namespace Bench;

/// <summary>The cases of issue 6, run against the <see cref="Stack"/> in a fixed order, and the ratios between them.</summary>
sealed class Runner(Client client, Stack stack, Plan plan, Report report, string work, Func<string, bool> runs)
{
    const double MiB = 1 << 20;
    const int SmallSize = 4 * 1024;
    static readonly TimeSpan SmallRunCap = TimeSpan.FromSeconds(30);

    // Path names: the rows of the tables, the lines of the chart, and the two sides of each ratio.
    const string Disk = "disk write + fsync", Sha = "sha256", SinkPut = "loopback HTTP → sink (PUT)";
    const string DirectPut = "service PUT (direct)", DirectTus = "service tus 50 MiB chunks (direct)", PeerTus = "@tus/server tus 50 MiB chunks";
    const string WorkerPut = "Worker → DO → service PUT", WorkerTus = "Worker → DO → service tus", BarePut = "bare Worker → sink PUT";
    const string WorkerSinkPut = "Worker → DO → sink PUT";
    const string DirectGet = "service GET (direct)", WorkerGet = "Worker → DO → service GET";
    const string S3Put = "service PUT (direct, s3 backend)", S3Tus = "service tus 50 MiB chunks (direct, s3 backend)";
    const string SmallFile = "new 4 KiB file + fsync (disk ceiling)";
    // The production storage path (issue 19): the s3 backend beside the reference clients, same server, same bucket.
    const string LibStorage = "lib-storage Upload → s3rver (reference)", Transfer = "TransferUtility → s3rver (reference)";
    const string SmallPutObject = "PutObject 4 KiB → s3rver (ceiling)";
    const string SmallS3Put = "service PUT 4 KiB (direct, s3 backend)", SmallS3Tus = "service tus 4 KiB (direct, s3 backend)";
    // The default storage (issue 22): the s3 backend on R2 (wrangler dev's) through the Durable Object's outbound handler.
    const string R2Put = "service PUT (direct, R2 through the DO)", R2Tus = "service tus 50 MiB chunks (direct, R2 through the DO)";
    const string SmallR2Tus = "service tus 4 KiB (direct, R2 through the DO)";
    const string SmallTus = "service tus 4 KiB (direct)", SmallPeer = "@tus/server tus 4 KiB", SmallPut = "service PUT 4 KiB (direct)";
    const string CpuCase = "whole machine";

    /// <summary>The rows the s3 backend's targets compare (<c>--only s3</c>): the references, the filesystem's CPU, the s3 and R2 cases.</summary>
    public static readonly string[] S3Paths =
        [LibStorage, Transfer, DirectPut, DirectTus, S3Put, S3Tus, R2Put, R2Tus, SmallPutObject, SmallS3Put, SmallS3Tus, SmallR2Tus];
    const string JitPut = "service PUT (direct, JIT build)", JitTus = "service tus 50 MiB chunks (direct, JIT build)", JitSmallTus = "service tus 4 KiB (direct, JIT build)";

    public async Task Ceilings()
    {
        Console.WriteLine("ceilings (same bytes, same disk):");
        await Throughput("Ceilings", Disk, size => Bench.Ceilings.DiskWithFsync(work, size));
        await Throughput("Ceilings", Sha, Bench.Ceilings.Sha256);
        await Throughput("Ceilings", SinkPut, size => client.Put(stack.SinkTarget!, "sink", size));
        if (stack.S3References is { } references)
        {
            // What a client of the same bucket reaches: the s3 backend's large-file targets are ratios to these.
            await Throughput("Ceilings", LibStorage, size => references.Upload(Name("lib-storage", size), size));
            await Throughput("Ceilings", Transfer, size => references.Transfer(Name("transfer-utility", size), size));
        }
    }

    public async Task Uploads()
    {
        Console.WriteLine("uploads:");
        await stack.RefreshIdleRss();
        var direct = stack.Direct!;
        await Throughput("Uploads", DirectPut, size => client.Put(direct, Name("put", size), size), measureRss: true, serviceMetrics: true);
        await Throughput("Uploads", DirectTus, size => client.Tus(direct, Name("tus", size), size), measureRss: true, serviceMetrics: true);
        if (stack.JitDirect is { } jit)
        {
            // The same cases on the service's JIT build: what Native AOT costs or gains in throughput and memory.
            var memory = (stack.JitService!, stack.JitIdleRss);
            await Throughput("Uploads", JitPut, size => client.Put(jit, Name("jput", size), size), measureRss: true, memoryOf: memory);
            await Throughput("Uploads", JitTus, size => client.Tus(jit, Name("jtus", size), size), measureRss: true, memoryOf: memory);
        }
        if (stack.Peer is { } peer)
            await Throughput("Uploads", PeerTus, size => client.Tus(peer, Name("peer", size), size), afterEach: ClearPeerStore);
        if (stack.Worker is { } worker)
        {
            await Throughput("Uploads", WorkerPut, size => client.Put(worker, Name("wput", size), size), measureRss: true);
            await Throughput("Uploads", WorkerTus, size => client.Tus(worker, Name("wtus", size), size), measureRss: true);
        }
        if (stack.Bare is { } bare)
            await Throughput("Uploads", BarePut, size => client.Put(bare, "bare", size));
        if (stack.WorkerToSink is { } workerToSink)
            await Throughput("Uploads", WorkerSinkPut, size => client.Put(workerToSink, Name("wsink", size), size));
        if (stack.S3Direct is { } s3)
        {
            // The same uploads into a bucket (s3rver): for the memory target on the other backend.
            var memory = (stack.S3Service!, stack.S3IdleRss);
            await Throughput("Uploads", S3Put, size => client.Put(s3, Name("s3put", size), size), measureRss: true, memoryOf: memory);
            await Throughput("Uploads", S3Tus, size => client.Tus(s3, Name("s3tus", size), size), measureRss: true, memoryOf: memory);
        }
        if (stack.R2Direct is { } r2)
        {
            var memory = (stack.R2Service!, stack.R2IdleRss);
            await Throughput("Uploads", R2Put, size => client.Put(r2, Name("r2put", size), size), measureRss: true, memoryOf: memory);
            await Throughput("Uploads", R2Tus, size => client.Tus(r2, Name("r2tus", size), size), measureRss: true, memoryOf: memory);
        }
    }

    public async Task Downloads()
    {
        Console.WriteLine("downloads (of the files the direct PUTs stored):");
        await Throughput("Downloads", DirectGet, size => Download(stack.Direct!, size));
        if (stack.Worker is { } worker) await Throughput("Downloads", WorkerGet, size => Download(worker, size));

        foreach (var (path, target) in new[] { (DirectGet, stack.Direct), (WorkerGet, stack.Worker) })
        {
            if (target is null) continue;
            var from = plan.Largest / 2;
            var range = new RangeHeaderValue(from, from + (1 << 20) - 1);
            await client.Get(target, Name("put", plan.Largest), range);   // warm-up
            var millis = new List<double>();
            for (var i = 0; i < plan.RangeReads; i++)
            {
                var clock = Stopwatch.StartNew();
                var read = await client.Get(target, Name("put", plan.Largest), range);
                millis.Add(clock.Elapsed.TotalMilliseconds);
                if (read != 1 << 20) throw new InvalidOperationException($"{path}: Range read returned {read} bytes");
            }
            report.Add(new Measurement("Range reads", path, $"1 MiB in the middle of {Stats.Size(plan.Largest)}", 0, "ms", [.. millis]));
        }
    }

    async Task Download(Target target, long size)
    {
        var read = await client.Get(target, Name("put", size));
        if (read != size) throw new InvalidOperationException($"{target.Name}: downloaded {read} of {size} bytes");
    }

    public async Task SmallFiles()
    {
        Console.WriteLine("small files (4 KiB, uploads/s):");
        var files = Directory.CreateDirectory(Path.Combine(work, "small-files")).FullName;
        foreach (var concurrency in plan.Concurrency)
        {
            // What the disk allows for small files right now (it varies with what the machine freed lately).
            await Small(SmallFile, concurrency, (_, _) => Task.Run(() => Bench.Ceilings.SmallFileWithFsync(files, SmallSize)), unit: "files/s");
            await Small(SmallTus, concurrency, (i, _) => client.Tus(stack.Direct!, $"small/tus-{concurrency}-{i}.bin", SmallSize), serviceMetrics: true);
            // The peer's 4 KiB files stay until the run ends, as ours do: deleting thousands of files between
            // cases would slow the next case's file creations (ext4 without a journal skips inodes freed in
            // the last 30 s when it allocates), whichever server that case measures.
            if (stack.Peer is { } peer)
                await Small(SmallPeer, concurrency, (i, _) => client.Tus(peer, $"small/peer-{concurrency}-{i}.bin", SmallSize));
            await Small(SmallPut, concurrency, (i, _) => client.Put(stack.Direct!, $"small/put-{concurrency}-{i}.bin", SmallSize), serviceMetrics: true);
            if (concurrency == 8 && stack.JitDirect is { } jit)
                await Small(JitSmallTus, concurrency, (i, _) => client.Tus(jit, $"small/jtus-{concurrency}-{i}.bin", SmallSize));
            if (stack.S3References is { } references)
                await Small(SmallPutObject, concurrency, (i, _) => references.Put($"small/ceiling-{concurrency}-{i}.bin", SmallSize));
            if (stack.S3Direct is { } s3)
            {
                await Small(SmallS3Put, concurrency, (i, _) => client.Put(s3, $"small/s3put-{concurrency}-{i}.bin", SmallSize), service: stack.S3Service);
                await Small(SmallS3Tus, concurrency, (i, _) => client.Tus(s3, $"small/s3tus-{concurrency}-{i}.bin", SmallSize), service: stack.S3Service);
            }
            if (concurrency == 8 && stack.R2Direct is { } r2)
                await Small(SmallR2Tus, concurrency, (i, _) => client.Tus(r2, $"small/r2tus-{concurrency}-{i}.bin", SmallSize));
        }
    }

    /// <summary>
    /// A small-file case; with <paramref name="serviceMetrics"/>, the filesystem service's own figures beside it, and
    /// with <paramref name="service"/> (or <paramref name="serviceMetrics"/>) that service's own CPU.
    /// </summary>
    async Task Small(string path, int concurrency, Func<int, CancellationToken, Task> upload, bool serviceMetrics = false, string unit = "uploads/s",
        Child? service = null)
    {
        if (!runs(path)) return;
        var next = 0;
        async Task<(int Count, double Seconds, List<double> Millis)> Batch(int count, TimeSpan cap)
        {
            var latencies = new ConcurrentBag<double>();
            var clock = Stopwatch.StartNew();
            var done = 0;
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
            {
                while (clock.Elapsed < cap && Interlocked.Increment(ref done) <= count)
                {
                    var one = Stopwatch.StartNew();
                    await upload(Interlocked.Increment(ref next), CancellationToken.None);
                    latencies.Add(one.Elapsed.TotalMilliseconds);
                }
            }));
            return (latencies.Count, clock.Elapsed.TotalSeconds, [.. latencies]);
        }

        await Batch(int.MaxValue, plan.SmallWarmUp);
        var metrics = serviceMetrics ? stack.Metrics : null;
        var before = metrics is null ? null : await metrics.Snapshot();
        var rates = new List<double>();
        var all = new List<double>();
        var cpu = new List<(CpuTime Cpu, double Units)>();
        var serving = service ?? (serviceMetrics ? stack.Service : null); // the service's own CPU where it serves the case
        for (var run = 0; run < plan.Runs; run++)
        {
            var cpuBefore = CpuTime.Read(serving?.Pid);
            var (count, seconds, millis) = await Batch(plan.SmallUploads, SmallRunCap);
            cpu.Add((CpuTime.Read(serving?.Pid) - cpuBefore, count / 1000.0)); // CPU-ms per upload
            rates.Add(count / seconds);
            all.AddRange(millis);
        }
        var seen = before is null ? "" : "; " + (await metrics!.Snapshot() - before).Describe((long)all.Count * SmallSize);
        report.Add(new Measurement("Small files", path, $"concurrency {concurrency}", SmallSize, unit, [.. rates],
            $"p50 {Stats.Percentile(all, 50):0.0} ms, p99 {Stats.Percentile(all, 99):0.0} ms{seen}"));
        ReportCpu(path, SmallCpuCase(concurrency), SmallSize, $"CPU-ms/{unit.Split('/')[0].TrimEnd('s')}", cpu, serving is not null);
    }

    static string SmallCpuCase(int concurrency) => $"4 KiB, concurrency {concurrency}, {CpuCase}";

    const string ServiceCpu = "CPU (upload service)";

    /// <summary>A warm-up on the path's first size, then <see cref="Plan.Runs"/> timed runs per size.</summary>
    /// With <paramref name="serviceMetrics"/>, the service's own figures for the same runs go beside them; with
    /// <paramref name="measureRss"/>, the peak RSS of the largest size's runs over the idle RSS of the service in
    /// <paramref name="memoryOf"/> (default: the filesystem-backed service).
    async Task Throughput(string group, string path, Func<long, Task> run, bool measureRss = false, Action? afterEach = null,
        bool serviceMetrics = false, (Child Service, long IdleRss)? memoryOf = null)
    {
        if (!runs(path)) return;
        var (service, idleRss) = memoryOf ?? (stack.Service!, stack.IdleRss);
        await run(plan.Sizes[0]);
        afterEach?.Invoke();
        var metrics = serviceMetrics ? stack.Metrics : null;
        foreach (var size in plan.Sizes)
        {
            var before = metrics is null ? null : await metrics.Snapshot();
            var values = new List<double>();
            var growth = new List<double>();
            var cpu = new List<(CpuTime Cpu, double Units)>();
            var largest = size == plan.Largest;
            int? servicePid = measureRss ? service.Pid : null; // the service's own CPU where it is on the path
            for (var i = 0; i < plan.Runs; i++)
            {
                var sampler = measureRss && largest ? new RssSampler(service.Pid) : null;
                var cpuBefore = largest ? CpuTime.Read(servicePid) : default;
                var clock = Stopwatch.StartNew();
                await run(size);
                var seconds = clock.Elapsed.TotalSeconds;
                if (largest) cpu.Add((CpuTime.Read(servicePid) - cpuBefore, size / (double)(1L << 30))); // CPU-s per GiB
                afterEach?.Invoke();   // untimed: the peer keeps every upload, so its store is emptied between runs
                if (sampler is not null)
                {
                    await sampler.DisposeAsync();
                    growth.Add((sampler.Peak - idleRss) / MiB);
                }
                values.Add(size / MiB / seconds);
            }
            var seen = before is null ? "" : (await metrics!.Snapshot() - before).Describe(size * plan.Runs);
            report.Add(new Measurement(group, path, Stats.Size(size), size, "MiB/s", [.. values], seen));
            if (growth.Count > 0)
                report.Add(new Measurement("Memory", path, $"peak RSS − idle, {Stats.Size(size)}", size, "MiB", [.. growth],
                    $"idle {idleRss / MiB:0} MiB"));
            if (largest) ReportCpu(path, $"{Stats.Size(size)}, {CpuCase}", size, "CPU-s/GiB", cpu, measureRss);
        }
    }

    /// <summary>
    /// What a case cost in CPU per unit of work (a GiB, a thousand small uploads: <paramref name="unit"/>), over the
    /// whole machine (client, servers, workerd, kernel) and in the service, and how busy the cores were: near 100 %
    /// the cores, not the code's waiting, set the speed. Left out under 100 ticks of /proc/stat (no whole percents).
    /// </summary>
    void ReportCpu(string path, string @case, long size, string unit, List<(CpuTime Cpu, double Units)> runs, bool service)
    {
        var all = runs.Select(r => r.Cpu).Aggregate((a, b) => a + b);
        if (all.Total < 1) return;
        var own = service ? $"; the upload service {Stats.Median([.. runs.Select(r => r.Cpu.Process / r.Units)]):0.00} of them" : "";
        report.Add(new Measurement("CPU", path, @case, size, unit, [.. runs.Select(r => r.Cpu.Busy / r.Units)],
            $"cores {all.Busy / all.Total * 100:0} % busy ({Environment.ProcessorCount} cores){own}"));
        if (service)
            report.Add(new Measurement(ServiceCpu, path, @case, size, unit, [.. runs.Select(r => r.Cpu.Process / r.Units)],
                "the upload service's own CPU (its process), without the client, the storage server and the kernel's share for them"));
    }

    public async Task AppHostStartup(string repo)
    {
        Console.WriteLine("AppHost start-up (dotnet run --project AppHost, the per-user mode, to the Worker's /health through Aspire's proxy):");
        await using (var build = Child.Start("build AppHost", Stack.DotnetHost(), ["build", "AppHost/AppHost.csproj", "-nologo", "-v", "q"], repo))
        {
            var code = await build.WaitExit(TimeSpan.FromMinutes(5));
            if (code != 0) throw new InvalidOperationException($"dotnet build AppHost exited with {code}:\n{build.Tail()}");
        }
        var seconds = new List<double>();
        var runs = Math.Max(2, plan.Runs - 1);
        var authSecret = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
        for (var run = 0; run < runs; run++)
        {
            var ports = Enumerable.Range(0, 5).Select(_ => Ports.Free()).ToArray();
            var data = Path.Combine(work, $"apphost-{run}");
            var clock = Stopwatch.StartNew();
            var appHost = stack.Track(Child.Start("apphost", Stack.DotnetHost(),
                ["run", "--project", "AppHost", "--no-launch-profile", "--", "--upload-service", "project"], repo,
                new Dictionary<string, string>
                {
                    ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{ports[0]}",
                    ["ASPNETCORE_ENVIRONMENT"] = "Development",
                    ["DOTNET_ENVIRONMENT"] = "Development",
                    ["ASPIRE_ALLOW_UNSECURED_TRANSPORT"] = "true",
                    ["ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL"] = $"http://127.0.0.1:{ports[1]}",
                    ["ASPIRE_DASHBOARD_OTLP_HTTP_ENDPOINT_URL"] = $"http://127.0.0.1:{ports[2]}",
                    ["ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL"] = $"http://127.0.0.1:{ports[3]}",
                    ["Worker__Port"] = ports[4].ToString(),
                    ["LocalData__Root"] = data,
                    ["Parameters__auth-secret"] = authSecret,
                    ["Containers__MaxInstances"] = (Wakes + 2).ToString(), // every woken user keeps its instance
                }));
            try
            {
                using var http = Client.CreateHttp();
                http.Timeout = TimeSpan.FromSeconds(5);
                await appHost.WaitReady(async () =>
                {
                    using var response = await http.GetAsync($"http://127.0.0.1:{ports[4]}/health");
                    return response.IsSuccessStatusCode;
                }, TimeSpan.FromSeconds(180));
                seconds.Add(clock.Elapsed.TotalSeconds);
                if (run == runs - 1) await WakeInstances(new Uri($"http://127.0.0.1:{ports[4]}/"), authSecret, repo);
            }
            finally
            {
                await appHost.Stop(Child.Sigterm);   // dotnet run stops the orchestrator, which stops wrangler and the service
            }
        }
        report.Add(new Measurement("Start-up", "AppHost (per-user mode)", "start → all healthy", 0, "s", [.. seconds],
            "after a build; the Worker's /health through Aspire's proxy answers once the container runtime is up (WaitFor)"));
    }

    const int Wakes = 10;
    const string WakePath = "Worker → DO → new instance", WarmPath = "Worker → DO → warm instance", OwnStartPath = "upload service alone";

    /// <summary>
    /// Per-user instances (the AppHost's default mode): a 1 KiB PUT through the Worker for a user with no instance
    /// (the Durable Object starts one), until its 201; the same PUT again, to the now warm instance; and the
    /// instance's own start, exec → first 200 from /health, of the same build with the same kind of environment.
    /// </summary>
    async Task WakeInstances(Uri worker, string authSecret, string repo)
    {
        Console.WriteLine($"wakes ({Wakes} users, each its first request, then a second one):");
        using var http = Client.CreateHttp();
        var body = new byte[1024];
        var cold = new List<double>();
        var warm = new List<double>();
        for (var i = 0; i < Wakes; i++)
        {
            var token = UserTokens.Create(authSecret, $"wake-{i}-{Guid.NewGuid():N}", TimeSpan.FromHours(1));
            cold.Add(await TimedPut(http, worker, token, body));
            warm.Add(await TimedPut(http, worker, token, body));
        }

        // The runtime runs the upload service built beside the AppHost (Debug, as `dotnet run --project AppHost` builds it).
        var bin = Path.Combine(repo, "UploadService", "bin", "Debug", "net10.0");
        var own = new List<double>();
        for (var i = 0; i < Wakes; i++)
        {
            var port = Ports.Free();
            var data = Directory.CreateTempSubdirectory("bench-instance-");
            var clock = Stopwatch.StartNew();
            await using var instance = Child.Start("instance", Stack.DotnetHost(), [Path.Combine(bin, "UploadService.dll")], bin,
                new Dictionary<string, string>
                {
                    ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}",
                    ["Storage__Root"] = data.FullName,
                    ["INTERNAL_SECRET"] = Convert.ToHexString(RandomNumberGenerator.GetBytes(32)),
                    ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "",
                });
            using var probe = Client.CreateHttp();
            await instance.WaitReady(async () => (await probe.GetAsync($"http://127.0.0.1:{port}/health")).IsSuccessStatusCode, TimeSpan.FromSeconds(60));
            own.Add(clock.Elapsed.TotalMilliseconds);
            await instance.Stop(Child.Sigterm);
            data.Delete(recursive: true);
        }

        var added = Stats.Median([.. cold]) - Stats.Median([.. own]);
        report.Add(new Measurement("Wake", WakePath, "first request → 201 (1 KiB PUT)", 0, "ms", [.. cold],
            $"the Durable Object starts the instance and waits for it; orchestration adds {added:0} ms to the service's own start (medians)"));
        report.Add(new Measurement("Wake", WarmPath, "next request → 201 (1 KiB PUT)", 0, "ms", [.. warm], "the same users, their instances running"));
        report.Add(new Measurement("Wake", OwnStartPath, "exec → first /health 200", 0, "ms", [.. own], "the same build, polled every 50 ms"));
    }

    static async Task<double> TimedPut(HttpClient http, Uri worker, string token, byte[] body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri(worker, "files/wake.bin")) { Content = new ByteArrayContent(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var clock = Stopwatch.StartNew();
        using var response = await http.SendAsync(request);
        var elapsed = clock.Elapsed.TotalMilliseconds;
        if (response.StatusCode != System.Net.HttpStatusCode.Created)
            throw new InvalidOperationException($"PUT through the Worker answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return elapsed;
    }

    /// <summary>Wall time of `dotnet test tests/Integration.Tests` after a build (one run: it takes minutes).</summary>
    public async Task IntegrationTests(string repo)
    {
        Console.WriteLine("integration test suite (dotnet test tests/Integration.Tests --no-build, after a build):");
        await using (var build = Child.Start("build tests", Stack.DotnetHost(), ["build", "tests/Integration.Tests", "-nologo", "-v", "q"], repo))
        {
            var code = await build.WaitExit(TimeSpan.FromMinutes(5));
            if (code != 0) throw new InvalidOperationException($"dotnet build tests/Integration.Tests exited with {code}:\n{build.Tail()}");
        }
        var clock = Stopwatch.StartNew();
        await using var test = stack.Track(Child.Start("integration tests", Stack.DotnetHost(), ["test", "tests/Integration.Tests", "--no-build", "-nologo"], repo));
        var exit = await test.WaitExit(TimeSpan.FromMinutes(20));
        var summary = test.Tail().Split('\n').LastOrDefault(l => l.Contains("Passed!") || l.Contains("Failed!"))?.Trim() ?? $"exit code {exit}";
        report.Add(new Measurement("Start-up", "integration test suite", "dotnet test wall time", 0, "s",
            [clock.Elapsed.TotalSeconds], summary.Replace("|", "/")));
    }

    public void ComputeRatios()
    {
        var largest = Stats.Size(plan.Largest);
        var note = plan.Largest < 1L << 30 ? $"at {largest}: the target is for 1 GiB" : "";
        double? Median(string path, string @case) => report.Find(path, @case)?.Median;
        double? Divide(double? a, double? b) => a is { } x && b is { } y && y > 0 ? x / y : null;

        var ceiling = Median(Disk, largest) is { } disk && Median(Sha, largest) is { } sha ? Math.Min(disk, sha) : (double?)null;
        report.Ratios.Add(new Ratio($"service PUT {largest} / min(disk+fsync, sha256)", DirectPut, "min(" + Disk + ", " + Sha + ")",
            Divide(Median(DirectPut, largest), ceiling), 0.8, true, note));
        report.Ratios.Add(new Ratio($"service tus {largest} / @tus/server tus", DirectTus, PeerTus,
            Divide(Median(DirectTus, largest), Median(PeerTus, largest)), 1.0, true, note));
        report.Ratios.Add(new Ratio("4 KiB tus uploads/s at concurrency 8 / @tus/server (filesystem)", SmallTus, SmallPeer,
            Divide(Median(SmallTus, "concurrency 8"), Median(SmallPeer, "concurrency 8")), 1.3, true,
            "a floor: the small-file target is on the s3 backend, the path production uses (below)"));
        report.Ratios.Add(new Ratio($"Worker → DO → service PUT {largest} / bare Worker", WorkerPut, BarePut,
            Divide(Median(WorkerPut, largest), Median(BarePut, largest)), 0.8, true, note));
        var shippedMemory = report.Measurements.Where(m => m.Group == "Memory" && m.Path is not (JitPut or JitTus)).ToList();
        var growth = shippedMemory.Select(m => m.Values.Max()).DefaultIfEmpty().Max();
        report.Ratios.Add(new Ratio($"peak RSS growth, any {largest} case (MiB)", "peak RSS", "idle RSS",
            shippedMemory.Count > 0 ? growth : null, 64, false,
            (note.Length > 0 ? note + "; " : "") + (stack.S3Direct is null
                ? "filesystem store (the only backend measured)"
                : "filesystem store and s3 backend (s3rver)")));
        AddS3Ratios(largest, note);
        report.Ratios.Add(new Ratio("AppHost start to all healthy (s)", "AppHost", "—",
            report.Measurements.FirstOrDefault(m => m.Group == "Start-up")?.Median, 20, false, ""));
        report.Ratios.Add(new Ratio("wake through the Worker / the service's own start", WakePath, OwnStartPath,
            Divide(report.Measurements.FirstOrDefault(m => m.Path == WakePath)?.Median, report.Measurements.FirstOrDefault(m => m.Path == OwnStartPath)?.Median),
            double.NaN, false, "how much of a wake is the upload service starting (1 = all of it)"));

        // Cold start and footprint (issue 17), of the build the image ships.
        double? Cold(string path, string @case) => report.Find(path, @case)?.Median;
        report.Ratios.Add(new Ratio("service start / @tus/server start", ColdStarts.Service, ColdStarts.Peer,
            Divide(Cold(ColdStarts.Service, ColdStarts.FirstAnswer), Cold(ColdStarts.Peer, ColdStarts.FirstAnswer)), 0.5, false,
            "exec → first answer, medians"));
        report.Ratios.Add(new Ratio("service start / minimal Native AOT app start", ColdStarts.Service, ColdStarts.Floor,
            Divide(Cold(ColdStarts.Service, ColdStarts.FirstAnswer), Cold(ColdStarts.Floor, ColdStarts.FirstAnswer)), 1.3, false,
            "exec → first answer, medians; the floor of this stack"));
        report.Ratios.Add(new Ratio("service first 1 MiB upload / @tus/server first 1 MiB upload", ColdStarts.Service, ColdStarts.Peer,
            Divide(Cold(ColdStarts.Service, ColdStarts.FirstUpload), Cold(ColdStarts.Peer, ColdStarts.FirstUpload)), 0.5, false,
            "exec → the upload stored: one signed PUT against a tus creation and PATCH"));
        report.Ratios.Add(new Ratio("service idle RSS (MiB)", "upload service", "—",
            report.Find("upload service", Stack.IdleCase)?.Median, 48, false, Stack.IdleCase));
        report.Ratios.Add(new Ratio("image size / the image before Native AOT", ImageSize.Path, ImageSize.BeforeText,
            Divide(report.Find(ImageSize.Path, ImageSize.Case)?.Median, ImageSize.BeforeMb), 1 / 3.0, false,
            "as podman counts them (uncompressed); the image container-check built"));

        // Diagnostics: where the time goes between the pairs above.
        report.Ratios.Add(new Ratio("service start, JIT build / Native AOT", ColdStarts.ServiceJit, ColdStarts.Service,
            Divide(Cold(ColdStarts.ServiceJit, ColdStarts.FirstAnswer), Cold(ColdStarts.Service, ColdStarts.FirstAnswer)), double.NaN, false,
            "what Native AOT saves on every wake"));
        report.Ratios.Add(new Ratio($"service PUT {largest}, Native AOT / JIT build", DirectPut, JitPut,
            Divide(Median(DirectPut, largest), Median(JitPut, largest)), double.NaN, true, "what Native AOT costs in throughput (no tiered PGO)"));
        report.Ratios.Add(new Ratio($"service tus {largest}, Native AOT / JIT build", DirectTus, JitTus,
            Divide(Median(DirectTus, largest), Median(JitTus, largest)), double.NaN, true, ""));
        report.Ratios.Add(new Ratio("4 KiB tus at concurrency 8, Native AOT / JIT build", SmallTus, JitSmallTus,
            Divide(Median(SmallTus, "concurrency 8"), Median(JitSmallTus, "concurrency 8")), double.NaN, true, ""));
        report.Ratios.Add(new Ratio($"service PUT {largest} / loopback HTTP into the sink", DirectPut, SinkPut,
            Divide(Median(DirectPut, largest), Median(SinkPut, largest)), double.NaN, true, "the service's own cost over bare HTTP"));
        report.Ratios.Add(new Ratio($"Worker → DO → service PUT {largest} / service PUT direct", WorkerPut, DirectPut,
            Divide(Median(WorkerPut, largest), Median(DirectPut, largest)), double.NaN, true, "the Worker path's own cost"));
        report.Ratios.Add(new Ratio($"Worker → DO → sink PUT {largest} / bare Worker", WorkerSinkPut, BarePut,
            Divide(Median(WorkerSinkPut, largest), Median(BarePut, largest)), double.NaN, true,
            "our Worker, Durable Object, auth, signature and tracing alone: the same sink behind both"));
        report.Ratios.Add(new Ratio($"bare Worker {largest} / loopback HTTP into the sink", BarePut, SinkPut,
            Divide(Median(BarePut, largest), Median(SinkPut, largest)), double.NaN, true, "the runtime's own cost"));
        // At full use of the cores, a path's speed is the cores over its CPU-seconds per byte: these say how far the
        // CPU it spends lets each target's ratio go on this machine.
        var cpuCase = $"{largest}, {CpuCase}";
        double? AtFullCores(string path) => Divide(Environment.ProcessorCount * 1024.0, Median(path, cpuCase)); // MiB/s
        report.Ratios.Add(new Ratio($"service PUT {largest} at all cores busy / min(disk+fsync, sha256)", DirectPut, "min(" + Disk + ", " + Sha + ")",
            Divide(AtFullCores(DirectPut), ceiling), double.NaN, true,
            "the most the PUT target's ratio can be at the CPU this path spends per GiB (client and kernel included)"));
        report.Ratios.Add(new Ratio($"Worker → DO → service PUT {largest} at all cores busy / bare Worker at all cores busy", WorkerPut, BarePut,
            Divide(AtFullCores(WorkerPut), AtFullCores(BarePut)), double.NaN, true,
            "the Worker target's ratio when both paths are bound by the cores (see their CPU rows)"));
        report.Ratios.Add(new Ratio("4 KiB tus at concurrency 8 at all cores busy / @tus/server at all cores busy", SmallTus, SmallPeer,
            Divide(Median(SmallPeer, SmallCpuCase(8)), Median(SmallTus, SmallCpuCase(8))), double.NaN, true,
            "the small-file target's ratio when both servers are bound by the cores: the peer's CPU per upload over ours, client and kernel included (see their CPU rows)"));
        report.Ratios.Add(new Ratio("4 KiB tus uploads/s / new 4 KiB files + fsync per s, concurrency 8", SmallTus, SmallFile,
            Divide(Median(SmallTus, "concurrency 8"), Median(SmallFile, "concurrency 8")), double.NaN, true, "a tus upload creates 3 files and fsyncs 2"));
        report.Ratios.Add(new Ratio("4 KiB tus / 4 KiB PUT at concurrency 8 (service)", SmallTus, SmallPut,
            Divide(Median(SmallTus, "concurrency 8"), Median(SmallPut, "concurrency 8")), double.NaN, true, "tus costs two requests and one more file (its state)"));
    }

    /// <summary>
    /// The s3 backend's targets (issue 19), against the reference clients in the same run, same server, same bucket:
    /// s3rver is the ceiling here for any client, so the ratios say what the service's own path costs.
    /// </summary>
    void AddS3Ratios(string largest, string note)
    {
        double? Median(string path, string @case) => report.Find(path, @case)?.Median;
        double? Divide(double? a, double? b) => a is { } x && b is { } y && y > 0 ? x / y : null;
        var settings = stack.S3References is { } references ? $"{references.UploadSettings}; " : "";
        var at = note.Length > 0 ? note + "; " : "";
        report.Ratios.Add(new Ratio($"s3 backend PUT {largest} / lib-storage Upload", S3Put, LibStorage,
            Divide(Median(S3Put, largest), Median(LibStorage, largest)), 0.8, true, at + settings + "same bucket"));
        report.Ratios.Add(new Ratio($"s3 backend tus {largest} / lib-storage Upload", S3Tus, LibStorage,
            Divide(Median(S3Tus, largest), Median(LibStorage, largest)), 0.8, true, at + "50 MiB chunks"));
        report.Ratios.Add(new Ratio($"s3 backend PUT {largest} / TransferUtility", S3Put, Transfer,
            Divide(Median(S3Put, largest), Median(Transfer, largest)), double.NaN, true,
            at + (stack.S3References?.TransferSettings ?? "")));
        var cpuCase = $"{largest}, {CpuCase}";
        double? OwnCpu(string path) => report.Measurements.FirstOrDefault(m => m.Group == ServiceCpu && m.Path == path && m.Case == cpuCase)?.Median;
        report.Ratios.Add(new Ratio($"service CPU per GiB, s3 backend / filesystem, PUT {largest}", S3Put, DirectPut,
            Divide(OwnCpu(S3Put), OwnCpu(DirectPut)), 1.5, false, at + "the service's own CPU-seconds per GiB"));
        report.Ratios.Add(new Ratio($"service CPU per GiB, s3 backend / filesystem, tus {largest}", S3Tus, DirectTus,
            Divide(OwnCpu(S3Tus), OwnCpu(DirectTus)), 1.5, false, at + "the service's own CPU-seconds per GiB"));
        var s3Memory = report.Measurements.Where(m => m.Group == "Memory" && m.Path is S3Put or S3Tus).ToList();
        report.Ratios.Add(new Ratio($"peak RSS growth, s3 backend, any {largest} case (MiB)", "peak RSS", "idle RSS",
            s3Memory.Count > 0 ? s3Memory.Select(m => m.Values.Max()).Max() : null, 32, false, at + "s3 backend (s3rver)"));
        // What the hop through the Durable Object costs: the same backend, on R2 through the object's handler against
        // straight to s3rver (two local servers: the figures say where each path stands, not R2's own speed).
        report.Ratios.Add(new Ratio($"PUT {largest}: R2 through the DO / s3rver direct", R2Put, S3Put,
            Divide(Median(R2Put, largest), Median(S3Put, largest)), double.NaN, true, at + "the default storage against the plain S3 path"));
        report.Ratios.Add(new Ratio($"tus {largest}: R2 through the DO / s3rver direct", R2Tus, S3Tus,
            Divide(Median(R2Tus, largest), Median(S3Tus, largest)), double.NaN, true, at + "50 MiB chunks"));
        report.Ratios.Add(new Ratio("4 KiB tus uploads/s, concurrency 8: R2 through the DO / s3rver direct", SmallR2Tus, SmallS3Tus,
            Divide(Median(SmallR2Tus, "concurrency 8"), Median(SmallS3Tus, "concurrency 8")), double.NaN, true, "2 storage requests per upload, each through the DO"));
        var r2Memory = report.Measurements.Where(m => m.Group == "Memory" && m.Path is R2Put or R2Tus).ToList();
        report.Ratios.Add(new Ratio($"peak RSS growth, R2 through the DO, any {largest} case (MiB)", "peak RSS", "idle RSS",
            r2Memory.Count > 0 ? r2Memory.Select(m => m.Values.Max()).Max() : null, double.NaN, false, at + "the service's own; the Worker's workerd is not counted"));
        foreach (var concurrency in plan.Concurrency)
        {
            var @case = $"concurrency {concurrency}";
            report.Ratios.Add(new Ratio($"4 KiB PUT/s on the s3 backend / PutObject ceiling, {@case}", SmallS3Put, SmallPutObject,
                Divide(Median(SmallS3Put, @case), Median(SmallPutObject, @case)), 0.5, true, "two S3 requests per small file at most"));
            report.Ratios.Add(new Ratio($"4 KiB tus uploads/s on the s3 backend / PutObject ceiling, {@case}", SmallS3Tus, SmallPutObject,
                Divide(Median(SmallS3Tus, @case), Median(SmallPutObject, @case)), 0.33, true, "two S3 requests per small tus upload (three allowed)"));
        }
    }

    void ClearPeerStore()
    {
        foreach (var file in Directory.EnumerateFiles(stack.PeerDirectory)) File.Delete(file);
    }

    static string Name(string kind, long size) => $"bench/{kind}-{size}.bin";
}
