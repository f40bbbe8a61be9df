using System.Collections.Concurrent;

namespace UploadService.Tus;

/// <summary>
/// One writer per upload: a request holds its upload's lock for as long as it runs (the handle is disposed
/// when the request ends, also when the client's connection drops), and a second request is refused
/// rather than queued (tus clients retry). In memory, because one process owns a storage root. Keyed by
/// upload id alone: ids are random 128-bit values the service issues, unique across users, so the expiry
/// sweep (which knows no user ids) takes the same lock as the requests.
/// </summary>
public sealed class TusLocks
{
    private readonly ConcurrentDictionary<string, byte> _held = new(StringComparer.Ordinal);

    public IDisposable? TryAcquire(string key) =>
        _held.TryAdd(key, 0) ? new Handle(this, key) : null;

    private sealed class Handle(TusLocks owner, string key) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                owner._held.TryRemove(key, out _);
            }
        }
    }
}
