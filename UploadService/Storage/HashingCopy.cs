using System.Buffers;
using System.Security.Cryptography;

namespace UploadService.Storage;

/// <summary>
/// The one copy loop stores use: bounded chunks, incremental SHA-256, size limit, and optionally a second
/// hash fed the same bytes (the checksum a tus client asked for).
/// </summary>
public static class HashingCopy
{
    /// <summary>Just below the large-object-heap threshold (85,000 bytes), as tusdotnet does.</summary>
    public const int BufferSize = 84 * 1024;

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
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            long total = 0;
            while (true)
            {
                int read;
                try
                {
                    read = await source.ReadAsync(buffer.AsMemory(0, BufferSize), cancellationToken);
                }
                catch (Exception ex) when (ex is not (OperationCanceledException or QuotaExceededException))
                {
                    throw new UploadContentException(ex);
                }

                if (read == 0)
                {
                    break;
                }

                total += read;
                if (total > maxBytes)
                {
                    throw new FileTooLargeException(maxBytes);
                }

                hash.AppendData(buffer, 0, read);
                alsoHash?.AppendData(buffer, 0, read);
                await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }

            return (total, Convert.ToHexStringLower(hash.GetHashAndReset()));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
