using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;

namespace UploadService.Hosting;

/// <summary>
/// The memory Kestrel's sockets read request bytes into: 64 KiB blocks instead of Kestrel's 4 KiB ones, so a
/// large upload arrives in 16 times fewer socket reads, pipe flushes and wake-ups of the request body's
/// reader (the copy into the file asks for 256 KiB at a time). Blocks are pinned (allocated on the pinned
/// object heap, as Kestrel's own are) and reused; at most <see cref="MaxPooledBlocks"/> wait idle, the rest
/// go back to the garbage collector.
/// </summary>
public sealed class ReceiveBufferPool : MemoryPool<byte>
{
    public const int BlockSize = 64 * 1024;
    private const int MaxPooledBlocks = 256; // 16 MiB idle at most

    private readonly ConcurrentQueue<byte[]> _idle = new();
    private int _idleCount;

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (_idle.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _idleCount);
        }
        else
        {
            block = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);
        }

        return new Lease(this, block);
    }

    protected override void Dispose(bool disposing)
    {
        _idle.Clear();
    }

    private void Return(byte[] block)
    {
        if (Interlocked.Increment(ref _idleCount) <= MaxPooledBlocks)
        {
            _idle.Enqueue(block);
        }
        else
        {
            Interlocked.Decrement(ref _idleCount);
        }
    }

    private sealed class Lease(ReceiveBufferPool pool, byte[] block) : IMemoryOwner<byte>
    {
        private byte[]? _block = block;

        public Memory<byte> Memory => _block ?? throw new ObjectDisposedException(nameof(Lease));

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _block, null) is { } returned)
            {
                pool.Return(returned);
            }
        }
    }

    /// <summary>What Kestrel asks for a pool per transport (<see cref="IMemoryPoolFactory{T}"/>).</summary>
    public sealed class Factory : IMemoryPoolFactory<byte>
    {
        public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new ReceiveBufferPool();
    }
}
