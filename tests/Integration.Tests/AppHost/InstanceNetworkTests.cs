using System.Net;
using System.Net.Sockets;
using System.Text;
using Aspire.Hosting;
using Microsoft.Extensions.Logging.Abstractions;

namespace Integration.Tests;

/// <summary>
/// Container mode's network, the parts that run without a container engine: reading <c>network inspect</c> and
/// the loopback relay to a container's port (here to a real listener). What an instance can reach is checked
/// from inside a real instance by scripts/container-check.sh.
/// </summary>
public sealed class InstanceNetworkTests
{
    // What podman 4.3 printed on this machine for `network create --internal upload-instances`.
    private const string Podman = """
        [
             {
                  "name": "upload-instances",
                  "id": "ddaf0555e54a0c8e24f0ac0d1c1d2f36cb5e0cfb7db7b3c7ec1f1e8b8e1a9e2f",
                  "driver": "bridge",
                  "network_interface": "podman1",
                  "subnets": [ { "subnet": "10.89.0.0/24", "gateway": "10.89.0.1" } ],
                  "ipv6_enabled": false,
                  "internal": true,
                  "dns_enabled": true
             }
        ]
        """;

    // The shape Docker documents for `docker network inspect` (no Docker engine runs here).
    private const string Docker = """
        [
          {
            "Name": "upload-instances",
            "Id": "0f3a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8",
            "Driver": "bridge",
            "EnableIPv6": false,
            "IPAM": { "Driver": "default", "Options": {}, "Config": [ { "Subnet": "172.19.0.0/16", "Gateway": "172.19.0.1" } ] },
            "Internal": true,
            "Options": {}
          }
        ]
        """;

    [Fact]
    public void Podmans_description_gives_subnet_gateway_bridge()
    {
        var network = InstanceNetwork.Describe(Podman, "podman");

        Assert.Equal(new InstanceNetwork.Description("10.89.0.0/24", IPAddress.Parse("10.89.0.1"), "podman1", Internal: true), network);
    }

    [Fact]
    public void Dockers_bridge_is_named_after_the_network_id_unless_an_option_names_it()
    {
        Assert.Equal(new InstanceNetwork.Description("172.19.0.0/16", IPAddress.Parse("172.19.0.1"), "br-0f3a1b2c3d4e", Internal: true),
            InstanceNetwork.Describe(Docker, "docker"));
        var named = Docker.Replace("\"Options\": {}\n", "\"Options\": { \"com.docker.network.bridge.name\": \"uploads0\" }\n", StringComparison.Ordinal);
        Assert.Equal("uploads0", InstanceNetwork.Describe(named, "docker").Bridge);
    }

    [Fact]
    public void A_network_that_is_not_internal_is_described_as_such()
    {
        Assert.False(InstanceNetwork.Describe(Podman.Replace("\"internal\": true", "\"internal\": false", StringComparison.Ordinal), "podman").Internal);
    }

    [Theory]
    // podman gives an internal network made with --disable-dns no gateway.
    [InlineData("{ \"subnet\": \"10.89.0.0/24\", \"gateway\": \"10.89.0.1\" }", "{ \"subnet\": \"10.89.0.0/24\" }", "has no gateway")]
    [InlineData("{ \"subnet\": \"10.89.0.0/24\", \"gateway\": \"10.89.0.1\" }", "{ \"subnet\": \"fd00:89::/64\", \"gateway\": \"fd00:89::1\" }", "has no IPv4 subnet")]
    public void A_network_the_relay_cannot_use_is_refused_with_the_fix(string range, string replacement, string reason)
    {
        var error = Assert.Throws<InvalidOperationException>(() => InstanceNetwork.Describe(Podman.Replace(range, replacement, StringComparison.Ordinal), "podman"));

        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
        Assert.Contains("podman network rm upload-instances", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_relay_pipes_both_ways_once_the_address_is_known_and_passes_the_half_close()
    {
        using var server = new TcpListener(IPAddress.Loopback, 0);
        server.Start();
        var address = new TaskCompletionSource<IPEndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var relay = new PortRelay(address.Task, NullLogger.Instance);

        // A client connects before the container has an address: it waits, and nothing is lost.
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, relay.Port);
        var stream = client.GetStream();
        var request = Encoding.ASCII.GetBytes(new string('x', 300_000));
        await stream.WriteAsync(request);
        client.Client.Shutdown(SocketShutdown.Send);
        address.SetResult((IPEndPoint)server.LocalEndpoint);

        // The "container": reads to the end (the client's half-close must arrive), then answers and closes.
        using var accepted = await server.AcceptTcpClientAsync();
        var received = new MemoryStream();
        await accepted.GetStream().CopyToAsync(received);
        var answer = Encoding.ASCII.GetBytes($"got {received.Length}");
        await accepted.GetStream().WriteAsync(answer);
        accepted.Close();

        var reply = new MemoryStream();
        await stream.CopyToAsync(reply).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(request.Length, received.Length);
        Assert.Equal("got 300000", Encoding.ASCII.GetString(reply.ToArray()));
    }

    [Fact]
    public async Task A_relay_whose_container_never_got_an_address_resets_the_connection()
    {
        var address = new TaskCompletionSource<IPEndPoint>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var relay = new PortRelay(address.Task, NullLogger.Instance);
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, relay.Port);

        address.SetException(new TimeoutException("no address"));

        // A reset, not an orderly close that a client could take for a complete (empty) answer.
        await Assert.ThrowsAnyAsync<IOException>(() => client.GetStream().ReadAsync(new byte[16]).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
    }
}
