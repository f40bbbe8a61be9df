using System.Net;
using System.Security.Cryptography;

namespace Bench;

/// <summary>The bytes every case sends: one 4 MiB random block repeated, so no case waits on a source.</summary>
public static class Payload
{
    public const int BlockSize = 4 * 1024 * 1024;
    public static readonly byte[] Block = MakeBlock();

    static byte[] MakeBlock()
    {
        var block = new byte[BlockSize];
        new Random(6).NextBytes(block);
        return block;
    }

    /// <summary>Calls <paramref name="write"/> with consecutive slices of the payload, <paramref name="length"/> bytes in all.</summary>
    public static async Task ForEachSlice(long offset, long length, int sliceSize, Func<ReadOnlyMemory<byte>, ValueTask> write)
    {
        var end = offset + length;
        for (var position = offset; position < end;)
        {
            var inBlock = (int)(position % BlockSize);
            var count = (int)Math.Min(Math.Min(sliceSize, BlockSize - inBlock), end - position);
            await write(Block.AsMemory(inBlock, count));
            position += count;
        }
    }
}

/// <summary>A request body of <c>length</c> payload bytes starting at <c>offset</c>, streamed with a known length.</summary>
public sealed class PayloadContent(long offset, long length) : HttpContent
{
    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        Payload.ForEachSlice(offset, length, 1024 * 1024, slice => stream.WriteAsync(slice));

    protected override bool TryComputeLength(out long length1)
    {
        length1 = length;
        return true;
    }
}

/// <summary>A stream that keeps nothing: where downloads and the sink put their bytes.</summary>
public static class Discard
{
    public static async Task<long> Drain(Stream source)
    {
        var buffer = new byte[256 * 1024];
        long total = 0;
        int read;
        while ((read = await source.ReadAsync(buffer)) > 0) total += read;
        return total;
    }
}
