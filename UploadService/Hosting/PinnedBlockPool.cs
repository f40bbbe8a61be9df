using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace UploadService.Hosting;

/// <summary>
/// Blocks of one size whose memory never moves (arrays on the pinned object heap) and starts at a multiple of
/// <c>alignment</c>, reused from one lease to the next: at most <c>maxIdle</c> wait idle, the rest go back to the
/// garbage collector.
/// </summary>
public class PinnedBlockPool(int blockSize, int alignment, int maxIdle) : MemoryPool<byte>
{
    private readonly ConcurrentQueue<Memory<byte>> _idle = new();
    private int _idleCount;

    public override int MaxBufferSize => blockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, blockSize);
        if (_idle.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _idleCount);
        }
        else
        {
            block = Allocate();
        }

        return new Lease(this, block);
    }

    protected override void Dispose(bool disposing)
    {
        _idle.Clear();
    }

    private Memory<byte> Allocate()
    {
        var array = GC.AllocateUninitializedArray<byte>(blockSize + alignment - 1, pinned: true);
        // A pinned array's address is fixed for its life; a pinned handle only reads it.
        var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
        var address = handle.AddrOfPinnedObject();
        handle.Free();
        var offset = (int)((alignment - address % alignment) % alignment);
        return array.AsMemory(offset, blockSize);
    }

    private void Return(Memory<byte> block)
    {
        if (Interlocked.Increment(ref _idleCount) <= maxIdle)
        {
            _idle.Enqueue(block);
        }
        else
        {
            Interlocked.Decrement(ref _idleCount);
        }
    }

    private sealed class Lease(PinnedBlockPool pool, Memory<byte> block) : IMemoryOwner<byte>
    {
        private int _returned;

        public Memory<byte> Memory => _returned != 0 ? throw new ObjectDisposedException(nameof(Lease)) : block;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _returned, 1) == 0)
            {
                pool.Return(block);
            }
        }
    }
}
