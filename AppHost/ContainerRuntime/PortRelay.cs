using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Aspire.Hosting;

/// <summary>
/// A loopback port that stands for a container's port on the internal network (engines do not publish ports of
/// internal networks): each connection to <see cref="Port"/> on 127.0.0.1 is piped, bytes as they come, to the
/// container's address, once the engine has given it one.
/// </summary>
internal sealed class PortRelay : IAsyncDisposable
{
    private static readonly TimeSpan AddressTimeout = TimeSpan.FromSeconds(60);

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Task<IPEndPoint> _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly ILogger _log;

    /// <param name="target">The container's address and port; connections made before it is known wait for it.</param>
    public PortRelay(Task<IPEndPoint> target, ILogger log)
    {
        _target = target;
        _log = log;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException || _stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException ex)
            {
                // e.g. out of file descriptors for a moment: the port stays open, the next connection may fit.
                _log.LogWarning("relay accept failed: {Message}", ex.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(100));
                continue;
            }
            _ = PipeAsync(client);
        }
    }

    private async Task PipeAsync(Socket client)
    {
        using var _ = client;
        using var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.NoDelay = true;
        try
        {
            var target = await _target.WaitAsync(AddressTimeout, _stop.Token);
            await upstream.ConnectAsync(target, _stop.Token);
            var up = CopyAsync(client, upstream);
            var down = CopyAsync(upstream, client);
            if (await Task.WhenAny(up, down) is { IsFaulted: true })
            {
                // A reset on one side resets the other, rather than leaving it waiting.
                client.Close(0);
                upstream.Close(0);
            }
            await Task.WhenAll(up, down);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or TimeoutException or ObjectDisposedException)
        {
            // The container is not up yet, went away, or a side reset: the client's connection is reset too (no
            // orderly close that could pass for a complete answer).
            _log.LogDebug("relay connection ended: {Message}", ex.Message);
            try { client.LingerState = new LingerOption(true, 0); } catch (ObjectDisposedException) { }
        }
    }

    /// <summary>One direction; when its source is done sending, the other side learns it (half-close), as on a direct connection.</summary>
    private async Task CopyAsync(Socket from, Socket to)
    {
        var buffer = new byte[81920];
        int read;
        while ((read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token)) > 0)
        {
            await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token);
        }
        to.Shutdown(SocketShutdown.Send);
    }
}
