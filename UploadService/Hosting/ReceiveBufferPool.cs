using System.Buffers;
using Microsoft.AspNetCore.Connections;

namespace UploadService.Hosting;

/// <summary>
/// The memory Kestrel's sockets read request bytes into: 64 KiB blocks instead of Kestrel's 4 KiB ones, so a
/// large upload arrives in 16 times fewer socket reads, pipe flushes and wake-ups of the request body's
/// reader. Pinned, as Kestrel's own blocks are; at most <see cref="MaxIdleBlocks"/> wait idle.
/// </summary>
public sealed class ReceiveBufferPool() : PinnedBlockPool(BlockSize, alignment: 1, MaxIdleBlocks)
{
    public const int BlockSize = 64 * 1024;
    private const int MaxIdleBlocks = 256; // 16 MiB idle at most

    /// <summary>What Kestrel asks for a pool per transport (<see cref="IMemoryPoolFactory{T}"/>).</summary>
    public sealed class Factory : IMemoryPoolFactory<byte>
    {
        public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new ReceiveBufferPool();
    }
}
