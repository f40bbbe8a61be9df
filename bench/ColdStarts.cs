using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Bench;

/// <summary>
/// Cold starts (issue 17): what every wake of a user's container pays before its first answer. Each server is
/// started <see cref="Plan.ColdStarts"/> times, the servers interleaved (so a slow spell of the machine falls on all
/// of them alike), and polled the same way: every 2 ms a new TCP connection and one HTTP/1.1 request written by hand
/// (a refused connection costs no exception, so the poller takes next to no CPU from the server starting beside it),
/// until the first answer. The first uploads wait for that first answer, then send the upload with the bench's
/// client. Each start has its own port and an empty data folder; each server is stopped (SIGTERM) before the next.
/// </summary>
sealed class ColdStarts(ServiceBuilds builds, Plan plan, Report report, string repo, string work)
{
    public const string Service = "upload service", ServiceJit = "upload service, JIT build",
        Floor = "minimal Native AOT app (CreateSlimBuilder, one endpoint)", Peer = "@tus/server (Node)";
    public const string FirstAnswer = "exec → first answer", FirstUpload = "exec → 1 MiB upload stored";
    const long UploadSize = 1 << 20;
    static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    /// <summary>How a server is started, probed, and (where it stores uploads) sent its first upload.</summary>
    sealed record Server(string Path, Executable Executable, Func<int, string, Dictionary<string, string>> Environment,
        string ProbeMethod, string ProbePath, bool AnyAnswer, Func<Client, Uri, Task>? Upload);

    public async Task Run()
    {
        Console.WriteLine($"cold starts ({plan.ColdStarts} of each, interleaved):");
        var servers = Servers();
        var starts = servers.ToDictionary(s => s.Path, _ => new List<double>());
        var rss = servers.ToDictionary(s => s.Path, _ => new List<double>());
        var cpu = servers.ToDictionary(s => s.Path, _ => new List<double>());
        var uploads = servers.Where(s => s.Upload is not null).ToDictionary(s => s.Path, _ => new List<double>());
        for (var i = 0; i < plan.ColdStarts; i++)
        {
            foreach (var server in servers)
            {
                var (millis, residentMiB, cpuMillis) = await Time(server, upload: false);
                starts[server.Path].Add(millis);
                rss[server.Path].Add(residentMiB);
                cpu[server.Path].Add(cpuMillis);
            }
            foreach (var server in servers.Where(s => s.Upload is not null))
                uploads[server.Path].Add((await Time(server, upload: true)).Millis);
        }
        foreach (var server in servers)
            report.Add(new Measurement("Cold start", server.Path, FirstAnswer, 0, "ms", [.. starts[server.Path]],
                $"{server.Executable.Label}; by the first answer: {Stats.Median([.. cpu[server.Path]]):0} CPU-ms (all its threads; "
                + $"on a 1/16 vCPU instance that alone is {Stats.Median([.. cpu[server.Path]]) * 16 / 1000:0.0} s), RSS {Stats.Median([.. rss[server.Path]]):0} MiB"));
        foreach (var (path, millis) in uploads)
            report.Add(new Measurement("Cold start", path, FirstUpload, UploadSize, "ms", [.. millis],
                path == Peer ? "a tus upload: creation, then one PATCH" : "one PUT, signed as the Durable Object signs"));
    }

    List<Server> Servers()
    {
        var servers = new List<Server>
        {
            new(Service, builds.Shipped, Stack.ServiceEnvironment, "GET", "/health", false,
                (client, baseUrl) => client.Put(Stack.Signed(Service, baseUrl), "cold/first.bin", UploadSize)),
        };
        if (builds.Native is not null)
            servers.Add(new(ServiceJit, builds.Jit, Stack.ServiceEnvironment, "GET", "/health", false, null));
        if (builds.Floor is { } floor)
            servers.Add(new(Floor, floor, (port, _) => new() { ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}" }, "GET", "/health", false, null));
        else
            report.Skip($"cold start of the {Floor}", "no Native AOT build here");
        if (Stack.PeerExecutable(repo) is { } peer)
            // Its first answer, whatever it is: @tus/server has no health endpoint.
            servers.Add(new(Peer, peer, Stack.PeerEnvironment, "OPTIONS", "/uploads", true,
                (client, baseUrl) => client.Tus(new Target(Peer, baseUrl, _ => { }), "cold/first.bin", UploadSize)));
        else
            report.Skip($"cold start of {Peer}", "bench/peer/node_modules is missing (cd bench/peer && npm ci)");
        return servers;
    }

    /// <summary>Exec → the first answer (or the first upload stored), and the RSS and the CPU time spent right then.</summary>
    async Task<(double Millis, double ResidentMiB, double CpuMillis)> Time(Server server, bool upload)
    {
        var port = Ports.Free();
        var data = Directory.CreateDirectory(Path.Combine(work, $"cold-{Guid.NewGuid():N}"));
        using var http = Client.CreateHttp();
        var client = new Client(http);
        var baseUrl = new Uri($"http://127.0.0.1:{port}/");
        var clock = Stopwatch.StartNew();
        var child = server.Executable.Start(server.Path, server.Environment(port, data.FullName));
        try
        {
            await child.WaitReady(async () => await Answer(port, server) is { } status && (server.AnyAnswer || status == 200),
                Deadline, every: TimeSpan.FromMilliseconds(2));
            if (upload) await server.Upload!(client, baseUrl);
            var millis = clock.Elapsed.TotalMilliseconds;
            return (millis, child.Rss() / (double)(1 << 20), CpuTime.Read(child.Pid).Process * 1000);
        }
        finally
        {
            await child.Stop(Child.Sigterm);
            data.Delete(recursive: true);
        }
    }

    /// <summary>The status code of the server's answer to its probe; null while nothing accepts the connection.</summary>
    static async Task<int?> Answer(int port, Server server)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var connected = new TaskCompletionSource<SocketError>();
        using var connect = new SocketAsyncEventArgs { RemoteEndPoint = new IPEndPoint(IPAddress.Loopback, port) };
        connect.Completed += (_, e) => connected.TrySetResult(e.SocketError);
        if (!socket.ConnectAsync(connect)) connected.TrySetResult(connect.SocketError);
        if (await connected.Task != SocketError.Success) return null;
        try
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes($"{server.ProbeMethod} {server.ProbePath} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
            var buffer = new byte[64];
            var read = 0;
            while (read < 12 && await socket.ReceiveAsync(buffer.AsMemory(read)) is > 0 and var n) read += n;
            // "HTTP/1.1 200": the status code is in bytes 9 to 11.
            return read >= 12 && int.TryParse(Encoding.ASCII.GetString(buffer, 9, 3), out var status) ? status : null;
        }
        catch (SocketException)
        {
            return null;   // accepted, then reset: not serving yet
        }
    }
}
