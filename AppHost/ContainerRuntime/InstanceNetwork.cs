using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Yarp.ReverseProxy.Forwarder;

namespace Aspire.Hosting;

/// <summary>
/// Container mode's network, the local form of <c>enableInternet = false</c>: every instance sits on the engine's
/// internal network <see cref="Name"/> (no route off it, so no internet and nothing on the host's loopback), and the
/// only thing it can open on the host is <see cref="OutboundUrl"/> on the network's gateway, a relay that passes
/// the Worker's outbound route (<c>/__outbound/…</c>, worker/src/dev/outbound-route.ts) and nothing else. Run as
/// root, firewall rules (nftables) close the rest of the gateway (anything else the host serves on all its
/// addresses) and the bridge between instances; without root they are left out and the runtime says so.
/// </summary>
internal sealed class InstanceNetwork : IAsyncDisposable
{
    public const string Name = "upload-instances";
    /// <summary>The nftables tables (one <c>inet</c>, one <c>bridge</c>) that hold the rules; replaced at each start.</summary>
    private const string FirewallTable = "upload_instances";
    /// <summary>The only path prefix the relay passes.</summary>
    public const string OutboundRoute = "/__outbound/";

    private const int SolIp = 0, IpFreebind = 15; // linux/in.h

    private readonly WebApplication _relay;
    private readonly HttpMessageInvoker _client;
    private readonly ILogger _log;

    private InstanceNetwork(WebApplication relay, HttpMessageInvoker client, Uri outboundUrl, string subnet, string bridge, string? firewallMissing, ILogger log)
    {
        _relay = relay;
        _client = client;
        OutboundUrl = outboundUrl;
        Subnet = subnet;
        Bridge = bridge;
        FirewallMissing = firewallMissing;
        _log = log;
    }

    /// <summary>Where instances reach the Worker's outbound route: the relay on the gateway.</summary>
    public Uri OutboundUrl { get; }
    /// <summary><see cref="OutboundUrl"/> as <c>LOCAL_WORKER_URL</c> takes it (no trailing slash), the prefix of the instances' outbound URLs.</summary>
    public string OutboundBase => OutboundUrl.GetLeftPart(UriPartial.Authority);
    public string Subnet { get; }
    /// <summary>The host's interface of the network (the bridge the instances hang off).</summary>
    public string Bridge { get; }
    /// <summary>Why the firewall rules are not in place, or null when they are.</summary>
    public string? FirewallMissing { get; }

    /// <summary>The arguments that put a container on the network, with IPv6 off (the rules are IPv4; link-local IPv6 would bypass them).</summary>
    public static string[] RunArguments => ["--network", Name, "--sysctl", "net.ipv6.conf.all.disable_ipv6=1"];

    /// <summary>
    /// Why this machine could not reach containers on such a network by their address (then instances stay on the
    /// host network, egress not enforced), or null.
    /// </summary>
    public static async Task<string?> UnreachableAsync(ContainerImage engine, CancellationToken cancellationToken)
    {
        if (!OperatingSystem.IsLinux()) return "the engine runs containers in a VM whose networks this machine cannot reach by address";
        if (!engine.Engine.EndsWith("podman", StringComparison.Ordinal)) return null;
        string? rootless = null;
        await engine.RunAsync(["info", "--format", "{{.Host.Security.Rootless}}"], NullLogger.Instance, cancellationToken, line => rootless ??= line.Trim());
        return rootless == "true" ? "rootless podman keeps its networks in a namespace of its own" : null;
    }

    /// <summary>
    /// Creates the network if it is missing (it is kept between runs, like the image), opens the relay on its gateway,
    /// forwarding to <paramref name="worker"/> (resolved per request: the Worker starts after the runtime), and puts
    /// the firewall rules in place.
    /// </summary>
    public static async Task<InstanceNetwork> OpenAsync(ContainerImage engine, Func<CancellationToken, ValueTask<string>> worker,
        ILogger log, CancellationToken cancellationToken)
    {
        var (subnet, gateway, bridge, @internal) = await InspectAsync(engine, log, cancellationToken)
            ?? await CreateAsync(engine, log, cancellationToken);
        if (!@internal)
        {
            throw new InvalidOperationException($"The {engine.Engine} network '{Name}' exists but is not internal (it would route instances to the internet): remove it (`{engine.Engine} network rm {Name}`) and the runtime makes it again.");
        }

        var client = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
        });
        var relay = await StartRelayAsync(gateway, worker, client, log, cancellationToken);
        try
        {
            var relayUrl = new Uri(relay.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single());
            var firewallMissing = await ApplyFirewallAsync(subnet, gateway, bridge, relayUrl.Port, log, cancellationToken);
            return new InstanceNetwork(relay, client, relayUrl, subnet, bridge, firewallMissing, log);
        }
        catch
        {
            await relay.DisposeAsync();
            client.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _relay.StopAsync(CancellationToken.None);
        await _relay.DisposeAsync();
        _client.Dispose();
        if (FirewallMissing is null)
        {
            await RunFirewallScriptAsync($"delete table inet {FirewallTable}\ndelete table bridge {FirewallTable}\n", _log, CancellationToken.None);
        }
    }

    private static async Task<Description> CreateAsync(
        ContainerImage engine, ILogger log, CancellationToken cancellationToken)
    {
        // Not --disable-dns: podman then gives an internal network no gateway, and the relay needs one. Its DNS
        // server on the gateway is out of the instances' reach like every port but the relay's (the firewall).
        var code = await engine.RunAsync(["network", "create", "--internal", "--label", "upload-instances", Name], log, cancellationToken);
        return code == 0 && await InspectAsync(engine, log, cancellationToken) is { } created
            ? created
            : throw new InvalidOperationException($"`{engine.Engine} network create --internal {Name}` exited with {code} (its output is in the runtime's log).");
    }

    /// <summary>The network as <c>network inspect</c> describes it; null if it does not exist.</summary>
    private static async Task<Description?> InspectAsync(ContainerImage engine, ILogger log, CancellationToken cancellationToken)
    {
        var json = new StringBuilder();
        var code = await engine.RunAsync(["network", "inspect", Name], log, cancellationToken, line => json.AppendLine(line));
        return code == 0 ? Describe(json.ToString(), engine.Engine) : null;
    }

    /// <summary>The network's IPv4 subnet, gateway and bridge, and whether it is internal.</summary>
    internal sealed record Description(string Subnet, IPAddress Gateway, string Bridge, bool Internal);

    /// <summary>Reads <c>network inspect</c>'s answer as podman or docker writes it.</summary>
    internal static Description Describe(string json, string engine)
    {
        using var document = JsonDocument.Parse(json);
        var network = document.RootElement[0];
        // podman: { "network_interface", "internal", "subnets": [{ "subnet", "gateway"? }] }
        // docker: { "Id", "Internal", "Options": { "com.docker.network.bridge.name"? }, "IPAM": { "Config": [{ "Subnet", "Gateway"? }] } }
        var podman = network.TryGetProperty("subnets", out var subnets);
        var ranges = podman ? subnets : network.GetProperty("IPAM").GetProperty("Config");
        foreach (var range in ranges.EnumerateArray())
        {
            var subnet = range.GetProperty(podman ? "subnet" : "Subnet").GetString()!;
            if (!IPNetwork.TryParse(subnet, out var parsed) || parsed.BaseAddress.AddressFamily != AddressFamily.InterNetwork) continue;
            if (!range.TryGetProperty(podman ? "gateway" : "Gateway", out var gateway) || !IPAddress.TryParse(gateway.GetString(), out var gatewayAddress))
            {
                throw new InvalidOperationException($"The {engine} network '{Name}' has no gateway, which the relay listens on (was it made with --disable-dns?): remove it (`{engine} network rm {Name}`) and the runtime makes it again.");
            }
            var bridge = podman
                ? network.GetProperty("network_interface").GetString()!
                : network.TryGetProperty("Options", out var options) && options.ValueKind == JsonValueKind.Object
                  && options.TryGetProperty("com.docker.network.bridge.name", out var name)
                    ? name.GetString()!
                    : "br-" + network.GetProperty("Id").GetString()![..12];
            return new Description(subnet, gatewayAddress, bridge, network.GetProperty(podman ? "internal" : "Internal").GetBoolean());
        }
        throw new InvalidOperationException($"The {engine} network '{Name}' has no IPv4 subnet: remove it (`{engine} network rm {Name}`) and the runtime makes it again.");
    }

    /// <summary>
    /// The relay: on the gateway's address only, any method and body (storage parts are streamed, no size limit),
    /// <see cref="OutboundRoute"/> forwarded to the Worker as it came; anything else 404.
    /// </summary>
    private static async Task<WebApplication> StartRelayAsync(IPAddress gateway, Func<CancellationToken, ValueTask<string>> worker,
        HttpMessageInvoker client, ILogger log, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.Listen(gateway, 0);
        });
        // The engine may make the bridge, and with it the gateway's address, only when the first instance joins:
        // IP_FREEBIND binds the address before it exists.
        builder.WebHost.UseSockets(sockets => sockets.CreateBoundListenSocket = endpoint =>
        {
            var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            socket.SetRawSocketOption(SolIp, IpFreebind, BitConverter.GetBytes(1));
            socket.Bind(endpoint);
            return socket;
        });
        builder.Services.AddRoutingCore();
        builder.Services.AddHttpForwarder();
        var relay = builder.Build();
        relay.Map(OutboundRoute + "{**rest}", async (HttpContext context, IHttpForwarder forwarder) =>
        {
            var error = await forwarder.SendAsync(context, await worker(context.RequestAborted), client);
            if (error != ForwarderError.None && !context.RequestAborted.IsCancellationRequested)
            {
                log.LogWarning("Relaying {Method} {Path} from an instance failed: {Error} {Exception}", context.Request.Method, context.Request.Path,
                    error, context.Features.Get<IForwarderErrorFeature>()?.Exception?.Message);
            }
        });
        relay.MapFallback(context =>
        {
            log.LogWarning("Refused {Method} {Path} from {Remote}: instances reach only the Worker's outbound route",
                context.Request.Method, context.Request.Path, context.Connection.RemoteIpAddress);
            return Results.Problem(statusCode: 404, detail: $"Instances reach only the Worker's outbound route ({OutboundRoute}…).").ExecuteAsync(context);
        });
        await relay.StartAsync(cancellationToken);
        return relay;
    }

    /// <summary>
    /// From the instances' bridge the host accepts only new connections to the relay (and what belongs to connections
    /// the host opened, such as the runtime's to each instance); the bridge forwards nothing between two instances.
    /// Returns why the rules are not in place, or null.
    /// </summary>
    private static async Task<string?> ApplyFirewallAsync(string subnet, IPAddress gateway, string bridge, int relayPort,
        ILogger log, CancellationToken cancellationToken)
    {
        if (!Environment.IsPrivilegedProcess) return "the firewall rules need root";
        // Declaring a table before deleting it makes the delete succeed whether or not an earlier run left one.
        var script = $$"""
            table inet {{FirewallTable}}
            delete table inet {{FirewallTable}}
            table inet {{FirewallTable}} {
              chain input {
                type filter hook input priority filter; policy accept;
                iifname "{{bridge}}" ct state established,related accept
                iifname "{{bridge}}" ip daddr {{gateway}} tcp dport {{relayPort}} accept
                iifname "{{bridge}}" reject
              }
            }
            table bridge {{FirewallTable}}
            delete table bridge {{FirewallTable}}
            table bridge {{FirewallTable}} {
              chain forward {
                type filter hook forward priority filter; policy accept;
                ip saddr {{subnet}} ip daddr {{subnet}} drop
              }
            }
            """;
        return await RunFirewallScriptAsync(script, log, cancellationToken);
    }

    private static async Task<string?> RunFirewallScriptAsync(string script, ILogger log, CancellationToken cancellationToken)
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, script, cancellationToken);
            var code = await ContainerImage.RunAsync("nft", ["-f", file], Path.GetTempPath(), log, cancellationToken);
            return code == 0 ? null : $"`nft -f` exited with {code}";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "nft (the nftables package) is not installed";
        }
        finally
        {
            File.Delete(file);
        }
    }
}
