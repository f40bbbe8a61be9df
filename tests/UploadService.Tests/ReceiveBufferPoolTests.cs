using System.Reflection;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using UploadService.Hosting;

namespace UploadService.Tests;

public sealed class ReceiveBufferPoolTests
{
    [Fact]
    public void Blocks_are_64_KiB_whatever_is_asked_and_come_back_for_reuse()
    {
        using var pool = new ReceiveBufferPool();
        var first = pool.Rent(2048);
        Assert.Equal(ReceiveBufferPool.BlockSize, first.Memory.Length);
        Assert.Equal(ReceiveBufferPool.BlockSize, pool.Rent().Memory.Length);
        var block = first.Memory;
        first.Dispose();
        first.Dispose(); // a second return must not put the block in the pool twice

        using var again = pool.Rent(4096);
        using var other = pool.Rent(4096);
        Assert.True(again.Memory.Span == block.Span || other.Memory.Span == block.Span);
        Assert.False(again.Memory.Span == other.Memory.Span);
        Assert.Throws<ObjectDisposedException>(() => first.Memory);
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(ReceiveBufferPool.BlockSize + 1));
    }

    [Fact]
    public void Kestrel_reads_sockets_into_the_pool()
    {
        using var service = new UploadServiceFactory();
        _ = service.Client; // starts the real Kestrel on a socket

        // One registration from Program, one from the test host (see UploadServiceFactory.CreateHost).
        Assert.Equal(2, service.Services.GetServices<IMemoryPoolFactory<byte>>().Count(factory => factory is ReceiveBufferPool.Factory));
        // The socket transport takes its pool factory from the container through an internal option; if a
        // later ASP.NET Core moves it, this says the larger socket reads are gone.
        var options = service.Services.GetRequiredService<IOptions<SocketTransportOptions>>().Value;
        var factory = typeof(SocketTransportOptions).GetProperty("MemoryPoolFactory", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(options);
        Assert.IsType<ReceiveBufferPool.Factory>(factory);
    }
}
