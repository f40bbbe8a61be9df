using System.Collections.Concurrent;
using System.Security.Cryptography;
using UploadService.Storage;

namespace UploadService.Tus;

/// <summary>
/// The SHA-256 of each unfinished upload's bytes so far, fed by its chunks as the bytes arrive
/// (<see cref="TusChunk"/>), so that committing an upload need not read them all again. In memory only, and
/// only while this process has seen every byte in order: after a restart, a failed or discarded append, or
/// an append at another offset, an upload has none and its commit hashes the stored bytes instead. Requests
/// on one upload are serialized by the caller (see <see cref="TusLocks"/>).
/// </summary>
public sealed class TusRunningHashes
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    /// <summary>
    /// For an append at <paramref name="upload"/>'s offset: its hash, taken out of the table until
    /// <see cref="Keep"/> puts it back after the append succeeded (a new one at offset 0); null when the
    /// bytes so far were not all seen here.
    /// </summary>
    public Entry? Take(TusUploadInfo upload)
    {
        if (_entries.TryRemove(upload.Id, out var entry))
        {
            if (entry.Offset == upload.Offset)
            {
                return entry;
            }

            entry.Dispose();
        }

        return upload.Offset == 0 ? new Entry(IncrementalHash.CreateHash(HashAlgorithmName.SHA256)) : null;
    }

    /// <summary>After a successful append that ended at <paramref name="offset"/>.</summary>
    public void Keep(string id, Entry entry, long offset)
    {
        entry.Offset = offset;
        _entries[id] = entry;
    }

    /// <summary>The lowercase hex SHA-256 of all of <paramref name="upload"/>'s bytes, or null when they must be read.</summary>
    public string? TakeSha256(TusUploadInfo upload)
    {
        using var entry = Take(upload);
        return entry is not null && entry.Offset == upload.Offset
            ? Convert.ToHexStringLower(entry.Hash.GetHashAndReset())
            : null;
    }

    public void Drop(string id)
    {
        if (_entries.TryRemove(id, out var entry))
        {
            entry.Dispose();
        }
    }

    public sealed class Entry(IncrementalHash hash) : IDisposable
    {
        public IncrementalHash Hash { get; } = hash;

        public long Offset { get; set; }

        public void Dispose() => Hash.Dispose();
    }
}
