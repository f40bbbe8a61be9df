using System.Net;
using System.Security.Cryptography;
using System.Text;
using Aspire.Hosting;
using LocalS3;
using UploadService.Security;
using UploadService.Storage;

namespace Bench;

/// <summary>
/// The servers under test, each started directly on 127.0.0.1 with a free port: the upload service (its Native AOT
/// binary where it could be published, else its Release dll; see <see cref="ServiceBuilds"/>), the peer
/// (@tus/server), the Worker under `wrangler dev` forwarding to that same service, the same Worker forwarding to the
/// sink instead, the bare pass-through Worker, and the in-process sink.
/// </summary>
public sealed class Stack(string repo, string work, HttpClient http, ServiceBuilds builds) : IAsyncDisposable
{
    static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);
    const string UserId = "bench";

    /// <summary>Shared by the upload service and the Worker's Durable Object, which signs what it forwards.</summary>
    static readonly string InternalSecret = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
    readonly List<IAsyncDisposable> started = [];

    public Sink? Sink { get; private set; }
    public Child? Service { get; private set; }
    public Target? Direct { get; private set; }
    public Target? Peer { get; private set; }
    public Target? Worker { get; private set; }
    public Target? Bare { get; private set; }

    /// <summary>Our Worker and Durable Object (auth, signature, tracing) with the sink as their container.</summary>
    public Target? WorkerToSink { get; private set; }
    public Target? SinkTarget { get; private set; }
    public string PeerDirectory => Path.Combine(work, "peer");
    public long IdleRss { get; private set; }

    /// <summary>The service's JIT build, beside the native one (null where the service's cases run the JIT build).</summary>
    public Child? JitService { get; private set; }
    public Target? JitDirect { get; private set; }
    public long JitIdleRss { get; private set; }

    /// <summary>A second upload service keeping its files in a bucket of a local s3rver (the s3 backend), for memory.</summary>
    public Child? S3Service { get; private set; }
    public Target? S3Direct { get; private set; }
    public long S3IdleRss { get; private set; }

    /// <summary>An upload service started by a Durable Object, its storage R2 through the object (the default storage).</summary>
    public Child? R2Service { get; private set; }
    public Target? R2Direct { get; private set; }
    public long R2IdleRss { get; private set; }

    /// <summary>The reference clients uploading into the same bucket (null where bench/peer is not installed).</summary>
    public S3References? S3References { get; private set; }
    /// <summary>The service's own upload metrics (null where its EventPipe session could not be opened).</summary>
    public ServiceMetrics? Metrics { get; private set; }

    public async Task Start(bool withWrangler, Report report)
    {
        Sink = await Sink.Start(Ports.Free());
        Track(Sink);
        SinkTarget = new Target("sink", Sink.Url, _ => { });

        var service = StartService();
        var peer = StartPeer(report);
        Task<Target?> worker = Task.FromResult<Target?>(null), bare = Task.FromResult<Target?>(null), workerToSink = Task.FromResult<Target?>(null);
        if (!withWrangler) report.Skip("Worker cases", "--no-wrangler");
        else if (WranglerPath() is not { } wrangler) report.Skip("Worker cases", "worker/node_modules/.bin/wrangler is missing or broken (cd worker && npm ci)");
        else
        {
            var serviceTarget = await service;
            worker = StartWorker("worker", wrangler, serviceTarget.BaseUrl);
            workerToSink = StartWorker("worker-to-sink", wrangler, Sink.Url);
            bare = StartBare(wrangler, Sink.Url);
        }
        Direct = await service;
        Peer = await peer;
        Worker = await worker;
        Bare = await bare;
        WorkerToSink = await workerToSink;

        IdleRss = await IdleRssOf(Service!, Direct);
        AddIdle(report, "upload service", IdleRss, builds.Shipped);
        try
        {
            Metrics = Track(ServiceMetrics.Start(Service!.Pid));
            await Metrics.Snapshot();
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            report.Skip("service metrics beside the direct cases", $"no EventPipe session with the service: {error.Message}");
            Metrics = null;
        }
    }

    Task<Target> StartService() => StartService("upload-service", "service", new(), child => Service = child, builds.Shipped);

    async Task<Target> StartService(string name, string folder, Dictionary<string, string> storage, Action<Child> started, Executable build)
    {
        var port = Ports.Free();
        var root = Path.Combine(work, folder);
        Directory.CreateDirectory(root);
        var environment = ServiceEnvironment(port, root);
        foreach (var (key, value) in storage) environment[key] = value;
        var child = build.Start(name, environment);
        Track(child);
        started(child);
        var baseUrl = new Uri($"http://127.0.0.1:{port}/");
        var ready = await child.WaitReady(() => Ok(new Uri(baseUrl, "health")), StartTimeout);
        Console.WriteLine($"{name} ({build.Label}) ready on {baseUrl} in {ready.TotalSeconds:0.0} s");
        return Signed(name, baseUrl);
    }

    /// <summary>Requests to the service straight from the client, signed as the Durable Object signs them.</summary>
    public static Target Signed(string name, Uri baseUrl)
    {
        var key = Encoding.UTF8.GetBytes(InternalSecret);
        return new Target(name, baseUrl, request =>
        {
            request.Headers.Add("X-User-Id", UserId);
            InternalSignature.Sign(request, key);
        });
    }

    /// <summary>What the service's cases need in their environment besides the port and the storage root.</summary>
    public static Dictionary<string, string> ServiceEnvironment(int port, string root) => new()
    {
        ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}",
        ["ASPNETCORE_ENVIRONMENT"] = "Production",
        ["Storage__Root"] = root,
        [InternalSignature.SecretSetting] = InternalSecret,
        ["Logging__LogLevel__Default"] = "Warning",
        ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "",
    };

    /// <summary>
    /// The JIT build beside the shipped native one, for the side-by-side rows (only where the native build exists:
    /// otherwise the service's cases already run the JIT build).
    /// </summary>
    public async Task StartJit(Report report)
    {
        if (builds.Native is null) return;
        JitDirect = await StartService("upload-service-jit", "service-jit", new(), child => JitService = child, builds.Jit);
        JitIdleRss = await IdleRssOf(JitService!, JitDirect);
        AddIdle(report, "upload service, JIT build", JitIdleRss, builds.Jit);
    }

    /// <summary>
    /// s3rver (tests/s3-server) on a free port with a bucket, an upload service on the s3 backend using it, and the
    /// reference clients of the s3 targets (<see cref="Bench.S3References"/>). Skipped (with the reason) where s3rver
    /// is not installed.
    /// </summary>
    public async Task StartS3(Report report)
    {
        if (!S3rver.IsInstalled(repo))
        {
            report.Skip("s3 backend cases", "tests/s3-server/node_modules is missing (cd tests/s3-server && npm ci)");
            return;
        }
        const string bucket = "bench", key = S3rver.Account;
        var port = Ports.Free();
        var data = Path.Combine(work, "s3rver");
        Directory.CreateDirectory(data);
        var server = Track(Child.Start("s3rver", Node(repo),
            [S3rver.Script, .. S3rver.Arguments(data, port, bucket)], S3rver.Folder(repo)));
        var endpoint = $"http://127.0.0.1:{port}";
        await server.WaitReady(async () =>
        {
            using var response = await http.GetAsync($"{endpoint}/{bucket}");
            return response.IsSuccessStatusCode;
        }, StartTimeout);
        S3References = await Bench.S3References.Start(repo, new S3StoreOptions
        {
            ServiceUrl = endpoint,
            Bucket = bucket,
            AccessKeyId = key,
            SecretAccessKey = key,
        }, reason => report.Skip("s3 reference clients", reason));
        if (S3References is not null) Track(S3References);
        S3Direct = await StartService("upload-service-s3", "service-s3", new Dictionary<string, string>
        {
            ["Storage__Provider"] = "s3",
            ["Storage__S3__ServiceUrl"] = endpoint,
            ["Storage__S3__Bucket"] = bucket,
            ["Storage__S3__AccessKeyId"] = key,
            ["Storage__S3__SecretAccessKey"] = key,
            ["Storage__S3__Region"] = "auto",
        }, child => S3Service = child, builds.Shipped);
        S3IdleRss = await IdleRssOf(S3Service!, S3Direct);
        AddIdle(report, "upload service, s3 backend", S3IdleRss, builds.Shipped);
    }

    public const string IdleCase = "RSS after start-up and one 1 MiB PUT + GET";

    static void AddIdle(Report report, string path, long rss, Executable build) =>
        report.Add(new Measurement("Idle memory", path, IdleCase, 0, "MiB", [rss / (double)(1 << 20)], build.Label));

    /// <summary>
    /// The services' idle RSS again, right before the large uploads whose peak is compared with it: the small-file
    /// cases before them leave more threads and a larger heap behind.
    /// </summary>
    public async Task RefreshIdleRss()
    {
        IdleRss = await IdleRssOf(Service!, Direct!);
        if (S3Direct is not null) S3IdleRss = await IdleRssOf(S3Service!, S3Direct);
        if (R2Direct is not null) R2IdleRss = await IdleRssOf(R2Service!, R2Direct);
    }

    /// <summary>RSS after start-up and one small round trip (so the upload path is loaded), before any case.</summary>
    async Task<long> IdleRssOf(Child service, Target target)
    {
        var client = new Client(http);
        await client.Put(target, "bench/idle.bin", 1 << 20);
        await client.Get(target, "bench/idle.bin");
        await Task.Delay(1000);
        var rss = service.Rss();
        Console.WriteLine($"{service.Name} idle RSS: {rss / (double)(1 << 20):0.0} MiB");
        return rss;
    }

    /// <summary>The peer (@tus/server + @tus/file-store, bench/peer) on the worker's Node 22; null where it is not installed.</summary>
    public static Executable? PeerExecutable(string repo)
    {
        var dir = Path.Combine(repo, "bench", "peer");
        return Directory.Exists(Path.Combine(dir, "node_modules", "@tus", "server"))
            ? new Executable("Node", Node(repo), ["server.mjs"], dir)
            : null;
    }

    /// <summary>The peer's environment: its port and the folder it stores uploads in.</summary>
    public static Dictionary<string, string> PeerEnvironment(int port, string directory) =>
        new() { ["PORT"] = port.ToString(), ["PEER_DIR"] = directory };

    async Task<Target?> StartPeer(Report report)
    {
        if (PeerExecutable(repo) is not { } executable)
        {
            report.Skip("@tus/server cases", "bench/peer/node_modules is missing (cd bench/peer && npm ci)");
            return null;
        }
        Directory.CreateDirectory(PeerDirectory);
        var port = Ports.Free();
        var peer = Track(executable.Start("peer", PeerEnvironment(port, PeerDirectory)));
        var baseUrl = new Uri($"http://127.0.0.1:{port}/");
        var ready = await peer.WaitReady(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Options, new Uri(baseUrl, "uploads"));
            using var response = await http.SendAsync(request);
            return response.IsSuccessStatusCode;
        }, StartTimeout);
        Console.WriteLine($"peer (@tus/server + @tus/file-store) ready on {baseUrl} in {ready.TotalSeconds:0.0} s");
        return new Target("peer", baseUrl, _ => { });
    }

    async Task<Target?> StartWorker(string name, string wrangler, Uri service)
    {
        var (baseUrl, token) = await StartDevWorker(name, wrangler, new() { ["CONTAINER_ORIGIN"] = service.ToString().TrimEnd('/') });
        Console.WriteLine($"{name} (wrangler dev → DO → {service}) ready on {baseUrl}");
        return new Target(name, baseUrl, request => request.Headers.Add("Authorization", $"Bearer {token}"));
    }

    /// <summary>
    /// The Worker on its development entry point (which gives the Durable Object its stand-in container) with these
    /// settings besides the token and signing keys; returns where it listens and a token for the bench's user.
    /// </summary>
    async Task<(Uri BaseUrl, string Token)> StartDevWorker(string name, string wrangler, Dictionary<string, string> vars, int? port = null)
    {
        var secret = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
        // The Worker's settings in a file only this user can read, as worker/scripts/dev.sh hands them over:
        // no secret on a command line, where every process on the machine can read it.
        var settings = Path.Combine(work, $"{name}.env");
        await using (var file = new FileStream(settings, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        await using (var writer = new StreamWriter(file))
        {
            await writer.WriteAsync($"AUTH_SECRET={secret}\n{InternalSignature.SecretSetting}={InternalSecret}\n");
            foreach (var (key, value) in vars) await writer.WriteAsync($"{key}={value}\n");
        }
        var (_, baseUrl) = await StartWrangler(name, wrangler, Path.Combine(repo, "worker"),
            ["src/dev/index.ts", "--enable-containers=false", "--env-file", settings],
            "health", HttpStatusCode.OK, port);
        return (baseUrl, UserTokens.Create(secret, UserId, TimeSpan.FromHours(1)));
    }

    /// <summary>
    /// The default storage (R2 behind the Durable Object): the Worker with wrangler dev's R2 and the bench's instance
    /// runtime, whose one instance (the bench's user's, started by a request through the Worker) keeps its files in
    /// R2 through the object's outbound handler, as production does. Skipped without wrangler.
    /// </summary>
    public async Task StartR2(bool withWrangler, Report report)
    {
        if (!withWrangler || WranglerPath() is not { } wrangler)
        {
            report.Skip("default storage (R2 through the Durable Object) cases", withWrangler ? "wrangler is missing" : "--no-wrangler");
            return;
        }
        var runtime = Track(await InstanceRuntime.Start(async (name, environment) =>
        {
            var port = Ports.Free();
            var root = Directory.CreateDirectory(Path.Combine(work, "service-r2")).FullName;
            var all = ServiceEnvironment(port, root);
            foreach (var (key, value) in environment) all[key] = value;
            var child = builds.Shipped.Start("upload-service-r2", all);
            await child.WaitReady(() => Ok(new Uri($"http://127.0.0.1:{port}/health")), StartTimeout);
            return (child, port);
        }));
        var workerPort = Ports.Free();
        var (baseUrl, token) = await StartDevWorker("worker-r2", wrangler, new()
        {
            ["CONTAINER_RUNTIME_URL"] = runtime.Url.ToString().TrimEnd('/'),
            ["CONTAINER_RUNTIME_TOKEN"] = runtime.Token,
            ["LOCAL_WORKER_URL"] = $"http://127.0.0.1:{workerPort}",
            ["FILE_STORAGE"] = "r2",
            ["CONTAINERS_SLEEP_AFTER"] = "2h",
        }, workerPort);
        // The user's first request wakes the instance, as on Cloudflare.
        using (var wake = new HttpRequestMessage(HttpMethod.Get, new Uri(baseUrl, "files")))
        {
            wake.Headers.Add("Authorization", $"Bearer {token}");
            using var woken = await http.SendAsync(wake);
            if (!woken.IsSuccessStatusCode) throw new InvalidOperationException($"worker-r2: the first request got {(int)woken.StatusCode}");
        }
        R2Service = runtime.Instance!;
        R2Direct = Signed("upload-service-r2", new Uri($"http://127.0.0.1:{runtime.InstancePort}/"));
        Console.WriteLine($"upload-service-r2 (storage through worker-r2's Durable Object) ready on {R2Direct.BaseUrl}");
        R2IdleRss = await IdleRssOf(R2Service, R2Direct);
        AddIdle(report, "upload service, R2 through the Durable Object", R2IdleRss, builds.Shipped);
    }

    async Task<Target?> StartBare(string wrangler, Uri sink)
    {
        var (_, baseUrl) = await StartWrangler("bare-worker", wrangler, Path.Combine(repo, "bench", "passthrough"),
            ["--var", $"TARGET:{sink}"], "", HttpStatusCode.NoContent);
        Console.WriteLine($"bare pass-through worker → sink ready on {baseUrl}");
        return new Target("bare", baseUrl, _ => { });
    }

    async Task<(Child, Uri)> StartWrangler(string name, string wrangler, string cwd, string[] extra, string probePath, HttpStatusCode expected, int? at = null)
    {
        var port = at ?? Ports.Free();
        var inspector = Ports.Free();
        var persist = Path.Combine(work, $"{name}-state");
        var nodeBin = Path.GetDirectoryName(wrangler)!;   // the worker's node_modules/.bin: wrangler and its Node 22
        var child = Child.Start(name, wrangler,
            ["dev", "--ip", "127.0.0.1", "--port", port.ToString(), "--inspector-port", inspector.ToString(),
             "--persist-to", persist, "--show-interactive-dev-session=false", .. extra],
            cwd,
            new Dictionary<string, string>
            {
                ["PATH"] = $"{nodeBin}:{Environment.GetEnvironmentVariable("PATH")}",
                ["WRANGLER_SEND_METRICS"] = "false",
                ["CLOUDFLARE_CF_FETCH_ENABLED"] = "false",
            });
        Track(child);
        var baseUrl = new Uri($"http://127.0.0.1:{port}/");
        await child.WaitReady(async () =>
        {
            using var response = await http.GetAsync(new Uri(baseUrl, probePath));
            return response.StatusCode == expected;
        }, StartTimeout);
        return (child, baseUrl);
    }

    /// <summary>The worker's own Node 22 (its `node` devDependency) where installed, else the machine's.</summary>
    public static string Node(string repo)
    {
        var local = Path.Combine(repo, "worker", "node_modules", ".bin", "node");
        return Runnable(local) ? local : "node";
    }

    /// <summary>The file exists and, where it is a link (as in node_modules/.bin), so does what it points to.</summary>
    static bool Runnable(string path)
    {
        var file = new FileInfo(path);
        return file.Exists && (file.LinkTarget is null || file.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true });
    }

    string? WranglerPath()
    {
        var path = Path.Combine(repo, "worker", "node_modules", ".bin", "wrangler");
        return Runnable(path) ? path : null;
    }

    async Task<bool> Ok(Uri url)
    {
        using var response = await http.GetAsync(url);
        return response.IsSuccessStatusCode;
    }

    public static string DotnetHost() => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    /// <summary>Something started outside <see cref="Start"/> (the AppHost, the tests) that an interrupted run must stop too.</summary>
    public T Track<T>(T child) where T : IAsyncDisposable
    {
        lock (started) started.Add(child);
        return child;
    }

    public async ValueTask DisposeAsync()
    {
        // Once, even when an interrupt and the main flow both get here; last started, first stopped (the
        // Workers before the service they forward to).
        IAsyncDisposable[] running;
        lock (started)
        {
            running = [.. started];
            started.Clear();
        }
        for (var i = running.Length - 1; i >= 0; i--) await running[i].DisposeAsync();
    }
}
