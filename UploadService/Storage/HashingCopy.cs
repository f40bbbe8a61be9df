using System.Buffers;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using UploadService.Hosting;

namespace UploadService.Storage;

/// <summary>
/// The one copy loop stores use: bounded chunks, incremental SHA-256, size limit, and optionally more
/// hashes fed the same bytes (the checksum a tus client asked for, an upload's running SHA-256).
/// Pipelined: while a buffer is being written, the next is read and hashed, so hashing and the network do
/// not wait for the disk (nor the disk for them). A body of at least one buffer going into a file is written
/// past the page cache (<see cref="DirectWrites"/>), several buffers at once at their own offsets, so the disk
/// always has the next one; anything else is written in order, one buffer while the next fills, and a file's
/// bytes are handed to the disk as they gather (<see cref="Writeback"/>), so the closing fsync does not write
/// them all at the end.
/// Every byte that was read is written before the copy ends, also when it ends with an exception (a
/// broken connection, the size limit): the destination then holds exactly the bytes that arrived (up to
/// the limit), which is what a tus upload keeps. A file destination is then positioned at the end of the
/// bytes written: after them all, or, when a write failed, at its start (a later direct write may have gone
/// past it; a caller that keeps the file truncates it to its position).
/// </summary>
public static class HashingCopy
{
    /// <summary>The size of the copy's buffers: reads fill one before it is hashed and written.</summary>
    public const int BufferSize = 1024 * 1024;

    /// <summary>
    /// Buffers per copy with direct writes: up to three written while the fourth fills (four while the next read
    /// waits for the oldest to be written), so the disk has writes queued while the network fills the next
    /// buffer; fewer leave it idle between writes, more only hold memory (docs/benchmarks.md, "Tuning").
    /// </summary>
    private const int DirectBuffers = 4;

    /// <summary>Buffers per copy with writes through the stream, one at a time: one written while the other fills.</summary>
    private const int InOrderBuffers = 2;

    private static readonly PinnedBlockPool Buffers = new(BufferSize, DirectWrites.Alignment, maxIdle: 16);

    public static async Task<(long Length, string Sha256)> CopyAsync(
        Stream source, Stream destination, long maxBytes, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var length = await CopyAsync(source, destination, maxBytes, [hash], cancellationToken);
        return (length, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    /// <summary>Copies at most <paramref name="maxBytes"/> bytes, feeding each of <paramref name="hashes"/> (nulls skipped); returns how many.</summary>
    public static async Task<long> CopyAsync(
        Stream source, Stream destination, long maxBytes, IReadOnlyList<IncrementalHash?> hashes, CancellationToken cancellationToken)
    {
        var writes = new Writes(destination);
        try
        {
            long total = 0;
            while (true)
            {
                var buffer = await writes.NextBufferAsync();
                var (filled, failure) = await FillAsync(source, buffer.Memory, maxBytes - total, maxBytes, cancellationToken);
                if (filled > 0)
                {
                    foreach (var hash in hashes)
                    {
                        hash?.AppendData(buffer.Memory.Span[..filled]);
                    }

                    // Not cancellable: a buffer that was read is written whole, so the destination's length is
                    // always the count of bytes copied.
                    await writes.WriteAsync(buffer, filled);
                    total += filled;
                }
                else
                {
                    buffer.Dispose();
                }

                if (failure is not null)
                {
                    await writes.DrainAsync();
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

            await writes.DrainAsync();
            return total;
        }
        finally
        {
            await writes.DisposeAsync();
        }
    }

    /// <summary>
    /// Reads until <paramref name="buffer"/> is full or the body ends. A failure (or more than
    /// <paramref name="room"/> bytes) is returned, not thrown, with the count of good bytes before it.
    /// </summary>
    private static async Task<(int Filled, Exception? Failure)> FillAsync(
        Stream source, Memory<byte> buffer, long room, long maxBytes, CancellationToken cancellationToken)
    {
        var filled = 0;
        while (filled < BufferSize)
        {
            int read;
            try
            {
                read = await source.ReadAsync(buffer[filled..], cancellationToken);
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

    /// <summary>
    /// The writes of one copy, in flight while the next buffer fills, and the buffers they hold: direct writes at
    /// their offsets, several at once, when the first buffer came full and the destination is a file that takes
    /// them; otherwise writes through the stream, one after the other.
    /// </summary>
    private sealed class Writes(Stream destination) : IAsyncDisposable
    {
        private readonly Queue<(Task Write, IMemoryOwner<byte> Buffer, long Offset)> _inFlight = new();
        private readonly FileStream? _file = destination as FileStream;
        private readonly long _start = destination is FileStream { CanSeek: true } file ? file.Position : 0;
        private bool _started;
        private DirectWrites? _direct;
        private Writeback? _writeback;
        private Task _last = Task.CompletedTask;
        private long _written;

        /// <summary>A buffer to fill: a new one while the copy holds fewer than it may, else the oldest one, once written.</summary>
        public async ValueTask<IMemoryOwner<byte>> NextBufferAsync()
        {
            if (_inFlight.Count < (_direct is null ? InOrderBuffers : DirectBuffers))
            {
                return Buffers.Rent();
            }

            var oldest = _inFlight.Peek();
            if (!oldest.Write.IsCompletedSuccessfully)
            {
                try
                {
                    await oldest.Write;
                }
                catch (Exception)
                {
                    await DrainAsync(); // throws the first write's failure, with the file positioned before it
                    throw;
                }
            }

            _inFlight.Dequeue();
            return oldest.Buffer;
        }

        /// <summary>Starts writing the first <paramref name="count"/> bytes of <paramref name="buffer"/>, which it keeps until written.</summary>
        public async ValueTask WriteAsync(IMemoryOwner<byte> buffer, int count)
        {
            if (!_started)
            {
                _started = true;
                _direct = count == BufferSize && _file is not null ? DirectWrites.Start(_file) : null;
                _writeback = _direct is null ? Writeback.For(destination) : null;
            }

            var bytes = buffer.Memory[..count];
            var offset = _start + _written;
            if (_direct is not null && count % DirectWrites.Alignment == 0)
            {
                _last = _direct.WriteAsync(bytes, offset);
            }
            else
            {
                if (_direct is not null)
                {
                    // The last piece of the body, not a whole number of blocks: through the page cache, once the
                    // direct writes before it are done.
                    try
                    {
                        await DrainAsync();
                    }
                    catch (Exception)
                    {
                        buffer.Dispose(); // not queued: nobody else would give it back
                        throw;
                    }
                }

                _last = WriteInOrderAsync(_last, bytes);
            }

            _inFlight.Enqueue((_last, buffer, offset));
            _written += count;
        }

        /// <summary>
        /// Waits for every write; a file is then positioned at the end of what was written: at the start of the
        /// first write that failed (whose exception this throws), or after them all.
        /// </summary>
        public async Task DrainAsync()
        {
            Exception? failure = null;
            var end = _start + _written;
            while (_inFlight.TryDequeue(out var entry))
            {
                try
                {
                    await entry.Write;
                }
                catch (Exception ex) when (failure is null)
                {
                    failure = ex;
                    end = entry.Offset;
                }
                catch (Exception)
                {
                    // After the first failure: only waited for, so that its buffer can go back.
                }
                finally
                {
                    entry.Buffer.Dispose();
                }
            }

            if (_direct is not null)
            {
                _direct.Stop();
                _direct = null;
                _file!.Position = end; // direct writes went to their offsets, past the stream's position
            }

            if (failure is not null)
            {
                ExceptionDispatchInfo.Throw(failure);
            }
        }

        private async Task WriteInOrderAsync(Task previous, ReadOnlyMemory<byte> bytes)
        {
            await previous;
            await destination.WriteAsync(bytes, CancellationToken.None);
            _writeback?.Written(bytes.Length);
        }

        /// <summary>When the copy ends with an exception: writes still in flight end before their buffers go back.</summary>
        public async ValueTask DisposeAsync()
        {
            try
            {
                await DrainAsync();
            }
            catch (Exception)
            {
                // The copy is already ending with an exception of its own (or this one's, thrown before).
            }
        }
    }
}
