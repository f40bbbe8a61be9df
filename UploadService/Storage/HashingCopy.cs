using System.Buffers;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;

namespace UploadService.Storage;

/// <summary>
/// The one copy loop stores use: bounded chunks, incremental SHA-256, size limit, and optionally more
/// hashes fed the same bytes (the checksum a tus client asked for, an upload's running SHA-256).
/// Pipelined: while one buffer is being written, the next is read and hashed, so hashing and the network
/// do not wait for the disk (nor the disk for them); a file destination's bytes are handed to the disk as
/// they gather (<see cref="Writeback"/>), so the closing fsync does not write them all at the end.
/// Every byte that was read is written before the copy ends, also when it ends with an exception (a
/// broken connection, the size limit): the destination then holds exactly the bytes that arrived (up to
/// the limit), which is what a tus upload keeps.
/// </summary>
public static class HashingCopy
{
    /// <summary>One of the two pooled buffers; reads fill it before it is hashed and written.</summary>
    public const int BufferSize = 256 * 1024;

    /// <summary>
    /// Whether a tus append that failed with <paramref name="exception"/> keeps the bytes that arrived before it
    /// (a broken connection, as tus intends), or discards the chunk: the quota is spent or the disk is full,
    /// and keeping part of the chunk would use up what there is not.
    /// </summary>
    public static bool KeepsWhatArrived(Exception exception) =>
        exception is not QuotaExceededException && !StorageFull.Is(exception);

    public static async Task<(long Length, string Sha256)> CopyAsync(
        Stream source, Stream destination, long maxBytes, CancellationToken cancellationToken,
        IncrementalHash? alsoHash = null)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var length = await CopyAsync(source, destination, maxBytes, [hash, alsoHash], cancellationToken);
        return (length, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    /// <summary>Copies at most <paramref name="maxBytes"/> bytes, feeding each of <paramref name="hashes"/> (nulls skipped); returns how many.</summary>
    public static async Task<long> CopyAsync(
        Stream source, Stream destination, long maxBytes, IReadOnlyList<IncrementalHash?> hashes, CancellationToken cancellationToken)
    {
        var current = ArrayPool<byte>.Shared.Rent(BufferSize);
        var spare = ArrayPool<byte>.Shared.Rent(BufferSize);
        var writing = Task.CompletedTask;
        var writeback = Writeback.For(destination);
        try
        {
            long total = 0;
            while (true)
            {
                var (filled, failure) = await FillAsync(source, current, maxBytes - total, maxBytes, cancellationToken);
                if (filled > 0)
                {
                    foreach (var hash in hashes)
                    {
                        hash?.AppendData(current, 0, filled);
                    }

                    await writing; // the spare buffer is free again
                    // Not cancellable: a buffer that was read is written whole, so the destination's length is
                    // always the count of bytes copied.
                    writing = WriteAsync(destination, current.AsMemory(0, filled), writeback);
                    (current, spare) = (spare, current);
                    total += filled;
                }

                if (failure is not null)
                {
                    await writing;
                    if (failure is OperationCanceledException or FileTooLargeException or QuotaExceededException)
                    {
                        ExceptionDispatchInfo.Throw(failure);
                    }

                    throw new UploadContentException(failure);
                }

                if (filled < BufferSize)
                {
                    break; // end of the body
                }
            }

            await writing;
            return total;
        }
        finally
        {
            // A failed write has already thrown; here it only has to be over before its buffer goes back.
            await writing.ContinueWith(static _ => { }, TaskScheduler.Default);
            ArrayPool<byte>.Shared.Return(current);
            ArrayPool<byte>.Shared.Return(spare);
        }
    }

    private static async Task WriteAsync(Stream destination, ReadOnlyMemory<byte> bytes, Writeback? writeback)
    {
        await destination.WriteAsync(bytes, CancellationToken.None);
        writeback?.Written(bytes.Length);
    }

    /// <summary>
    /// Reads until <paramref name="buffer"/> is full or the body ends. A failure (or more than
    /// <paramref name="room"/> bytes) is returned, not thrown, with the count of good bytes before it.
    /// </summary>
    private static async Task<(int Filled, Exception? Failure)> FillAsync(
        Stream source, byte[] buffer, long room, long maxBytes, CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < BufferSize)
        {
            int read;
            try
            {
                read = await source.ReadAsync(buffer.AsMemory(filled, BufferSize - filled), cancellationToken);
            }
            catch (Exception ex)
            {
                return (filled, ex);
            }

            if (read == 0)
            {
                break;
            }

            if (filled + read > room)
            {
                return (filled, new FileTooLargeException(maxBytes));
            }

            filled += read;
        }

        return (filled, null);
    }
}
