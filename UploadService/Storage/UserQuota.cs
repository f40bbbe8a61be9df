using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using UploadService.Apis;
using UploadService.Domain;

namespace UploadService.Storage;

/// <summary>
/// The per-user storage quota (<c>Upload:UserQuotaBytes</c>; 0 = none): files and unfinished tus uploads
/// together, as <see cref="IFileStore.GetUsageAsync"/> counts them. A write takes a <see cref="QuotaLease"/>
/// before it reads its body: a declared length (Content-Length, Upload-Length) is reserved up front, so an
/// upload that cannot fit is refused before a byte is read; a body of unknown length (chunked, deferred
/// tus length) reserves as it arrives and is stopped with <see cref="QuotaExceededException"/> at the byte
/// that would cross the quota.
/// <para>
/// What it guarantees, within this process (one process owns a storage root or a user's bucket prefix):
/// stored bytes plus the bytes reserved by writes in flight never exceed the quota, also with concurrent
/// uploads of one user, so no interleaving overshoots. It may refuse early, never late: a write's
/// reservation counts in full until its request ends (also for a file that replaces an older version, or a
/// chunk that failed), and a replaced or deleted file counts until the store is read again. The stored
/// figure is read from the store when a user is first seen and again before any refusal, so a refusal
/// always rests on the store's current figure plus the writes in flight. Concatenating partial uploads
/// does not change the stored total and is not checked. The figures are kept per user seen, in memory (one
/// small entry each; one container serves one user in production).
/// </para>
/// </summary>
public sealed class UserQuota(IFileStore store, IOptions<UploadOptions> options)
{
    private readonly ConcurrentDictionary<string, Usage> _users = new(StringComparer.Ordinal);

    public long QuotaBytes => options.Value.UserQuotaBytes;

    /// <summary>
    /// Reserves <paramref name="declaredBytes"/> (0 when the length is unknown) for one write of
    /// <paramref name="user"/>; null when that does not fit. Dispose the lease when the request ends.
    /// </summary>
    public async Task<QuotaLease?> TryReserveAsync(UserId user, long declaredBytes, CancellationToken cancellationToken)
    {
        if (QuotaBytes <= 0)
        {
            return QuotaLease.Unlimited;
        }

        var usage = _users.GetOrAdd(user.Value, _ => new Usage(user));
        return await TryAddAsync(usage, declaredBytes, cancellationToken) ? new QuotaLease(this, usage, declaredBytes) : null;
    }

    /// <summary>A problem text for a refusal.</summary>
    public string Describe() => $"The upload would exceed your storage quota of {QuotaBytes} bytes; what would have gone over it was not stored.";

    private async Task<bool> TryAddAsync(Usage usage, long bytes, CancellationToken cancellationToken)
    {
        await usage.Gate.WaitAsync(cancellationToken);
        try
        {
            usage.Stored ??= await store.GetUsageAsync(usage.User, cancellationToken);
            if (!Fits(usage, bytes))
            {
                // The figure may be stale (a file deleted or replaced since): refuse only on the store's word.
                usage.Stored = await store.GetUsageAsync(usage.User, cancellationToken);
                if (!Fits(usage, bytes))
                {
                    return false;
                }
            }

            usage.InFlight += bytes;
            return true;
        }
        finally
        {
            usage.Gate.Release();
        }
    }

    private bool Fits(Usage usage, long bytes) =>
        bytes <= QuotaBytes && usage.Stored!.Value + usage.InFlight <= QuotaBytes - bytes;

    private static async Task ReleaseAsync(Usage usage, long reserved, long kept)
    {
        await usage.Gate.WaitAsync(CancellationToken.None);
        try
        {
            usage.InFlight -= reserved;
            usage.Stored += kept;
        }
        finally
        {
            usage.Gate.Release();
        }
    }

    internal sealed class Usage(UserId user)
    {
        public UserId User { get; } = user;
        public SemaphoreSlim Gate { get; } = new(1, 1);

        /// <summary>Null until read from the store.</summary>
        public long? Stored { get; set; }

        public long InFlight { get; set; }
    }

    /// <summary>
    /// One write's share of the quota. <see cref="Wrap"/> gives the body as the store should read it;
    /// <see cref="Keep"/> says how many bytes stay stored once the request ends (default none).
    /// </summary>
    public sealed class QuotaLease : IAsyncDisposable
    {
        public static readonly QuotaLease Unlimited = new(null, null, 0);

        private readonly UserQuota? _quota;
        private readonly Usage? _usage;
        private long _reserved;
        private long _kept;
        private bool _keepAll;
        private int _released;

        internal QuotaLease(UserQuota? quota, Usage? usage, long reserved)
        {
            _quota = quota;
            _usage = usage;
            _reserved = reserved;
        }

        /// <summary>The body, counted against the quota as it is read (the body itself when there is no quota).</summary>
        public Stream Wrap(Stream body) => _quota is null ? body : new CountingStream(body, this);

        /// <summary>After the write: how many of the reserved bytes stay stored (at most the reservation).</summary>
        public void Keep(long bytes)
        {
            if (_usage is null)
            {
                return; // Unlimited is shared and counts nothing
            }

            _keepAll = false;
            _kept = Math.Max(bytes, 0);
        }

        /// <summary>Counts the whole reservation as stored when the request ends, however far it grows (until <see cref="Keep"/>).</summary>
        public void KeepAll() => _keepAll = _usage is not null;

        private async ValueTask GrowToAsync(long total, CancellationToken cancellationToken)
        {
            if (total <= _reserved)
            {
                return;
            }

            if (!await _quota!.TryAddAsync(_usage!, total - _reserved, cancellationToken))
            {
                throw new QuotaExceededException(_quota.QuotaBytes);
            }

            _reserved = total;
        }

        public async ValueTask DisposeAsync()
        {
            if (_usage is not null && Interlocked.Exchange(ref _released, 1) == 0)
            {
                await ReleaseAsync(_usage, _reserved, _keepAll ? _reserved : Math.Min(_kept, _reserved));
            }
        }

        /// <summary>Reserves each byte before handing it on; the read that would cross the quota throws instead.</summary>
        private sealed class CountingStream(Stream inner, QuotaLease lease) : Stream
        {
            private long _read;

            public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            {
                var read = await inner.ReadAsync(buffer, cancellationToken);
                _read += read;
                await lease.GrowToAsync(_read, cancellationToken);
                return read;
            }

            public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
                ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

            public override int Read(byte[] buffer, int offset, int count) =>
                ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

            public override bool CanRead => true;
            public override bool CanSeek => false;
            public override bool CanWrite => false;
            public override long Length => throw new NotSupportedException();
            public override long Position { get => _read; set => throw new NotSupportedException(); }
            public override void Flush() { }
            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
            public override void SetLength(long value) => throw new NotSupportedException();
            public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        }
    }
}
