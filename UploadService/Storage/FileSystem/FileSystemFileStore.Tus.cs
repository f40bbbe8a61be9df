using System.Text.Json;
using System.Text.Json.Serialization;
using UploadService.Domain;
using UploadService.Tus;

namespace UploadService.Storage;

/// <summary>
/// Resumable uploads on the filesystem, beside the files on the same volume:
/// <code>
/// {root}/uploads/{sha256(userId)}/{id}.json   the state (offset, length, metadata, expiry), replaced atomically
/// {root}/uploads/{sha256(userId)}/{id}.bin    the bytes received so far, while the upload is unfinished
/// </code>
/// An append truncates the bytes file to the persisted offset (dropping whatever a crash left past it),
/// writes, fsyncs, and only then replaces the state: the persisted offset never covers bytes that are not
/// on disk. The append that brings the last byte writes no state: the commit fsyncs the bytes beside the new
/// file record, renames the bytes file into the file's blob (content id = upload id) and switches the
/// record, and from then on the missing bytes file is what says "every byte arrived" (<see cref="AsFilesSay"/>).
/// So a one-chunk upload creates three files (state, bytes, record), replaces none and waits for one round
/// of fsyncs (two files flushed together), as a PUT does. Replacing files
/// is what small uploads avoid: each replaced file frees an inode, and ext4 without a journal passes over
/// recently freed inodes when it allocates new ones, so every replacement slows the creations after it. The
/// SHA-256 is the one the appends computed as the bytes arrived (<see cref="Tus.TusRunningHashes"/>), or read from
/// the file where this process did not see every byte.
/// </summary>
public sealed partial class FileSystemFileStore
{
    private string UploadsDirectory => Path.Combine(_root, "uploads");

    public override Task<TusUpload> CreateUploadAsync(UserId user, TusUploadInfo upload, CancellationToken cancellationToken)
    {
        var paths = LocateUpload(user, UploadId.Stored(upload.Id));
        Directory.CreateDirectory(Path.GetDirectoryName(paths.StatePath)!);
        using (new FileStream(paths.BytesPath, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
        }

        // Not fsynced: a creation acknowledges no bytes, and directory entries are never fsynced, so a power
        // loss could take a new upload either way (its client then finds it gone and starts again). The
        // first append's state write is durable.
        try
        {
            WriteJsonAtomically(paths.StatePath, upload, TusUploadInfoJson.Default.TusUploadInfo, durable: false);
        }
        catch
        {
            TryDelete(paths.BytesPath); // no state, no upload (a full disk, typically)
            throw;
        }

        return Task.FromResult<TusUpload>(new Upload(this, user, paths, upload));
    }

    public override Task<TusUpload?> GetUploadAsync(UserId user, UploadId id, CancellationToken cancellationToken)
    {
        var paths = LocateUpload(user, id);
        return Task.FromResult<TusUpload?>(ReadUploadState(paths.StatePath) is { } upload
            ? new Upload(this, user, paths, AsFilesSay(upload, paths.BytesPath))
            : null);
    }

    /// <summary>
    /// The upload as its files say it is: a (non-partial) upload whose bytes file is gone had every byte
    /// durable and moved them into its blob (<see cref="Upload.CommitBytesAsync"/>), so it is complete, whatever
    /// offset its state last recorded. Whether it is its file yet, committing it again tells.
    /// </summary>
    private static TusUploadInfo AsFilesSay(TusUploadInfo upload, string bytesPath) =>
        upload is { IsCommitted: false, IsPartial: false, Length: { } length } && !File.Exists(bytesPath)
            ? upload with { Offset = length }
            : upload;

    public override async Task<TusUpload> ConcatenateAsync(
        UserId user, TusUploadInfo final, IReadOnlyList<TusUpload> partials, long maxBytes, CancellationToken cancellationToken)
    {
        var paths = LocateUpload(user, UploadId.Stored(final.Id));
        Directory.CreateDirectory(Path.GetDirectoryName(paths.StatePath)!);
        string sha256;
        // The bytes file before the state: a final upload without one would read as complete (see AsFilesSay).
        await using (var destination = new FileStream(paths.BytesPath, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 0,
        }))
        {
            WriteJsonAtomically(paths.StatePath, final, TusUploadInfoJson.Default.TusUploadInfo);
            // One pass over all partials: the hash of the concatenation is the file's SHA-256.
            var concatenation = new SequentialStream(partials.Select(partial => ((Upload)partial).Paths.BytesPath)
                .Select(path => (Func<Stream>)(() => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan))));
            await using (concatenation)
            {
                (_, sha256) = await HashingCopy.CopyAsync(concatenation, destination, maxBytes, cancellationToken);
            }
        }

        var upload = new Upload(this, user, paths, final with { Offset = final.Length!.Value });
        await upload.CommitAsync(sha256, CancellationToken.None);
        foreach (var partial in partials)
        {
            await partial.TerminateAsync(CancellationToken.None);
        }

        return upload;
    }

    public override Task<int> DeleteExpiredUploadsAsync(DateTimeOffset now, Func<string, IDisposable?> tryLock, CancellationToken cancellationToken)
    {
        var removed = 0;
        if (!Directory.Exists(UploadsDirectory))
        {
            return Task.FromResult(removed);
        }

        foreach (var statePath in Directory.EnumerateFiles(UploadsDirectory, "*.json", SearchOption.AllDirectories))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var upload = ReadUploadState(statePath);
            if (upload is not null && !upload.IsExpired(now))
            {
                continue;
            }

            using var held = tryLock(Path.GetFileNameWithoutExtension(statePath));
            if (held is null)
            {
                continue; // being written right now; its request ends (and extends the expiry) or a later sweep gets it
            }

            TryDelete(statePath);
            TryDelete(Path.ChangeExtension(statePath, ".bin"));
            removed++;
        }

        return Task.FromResult(removed);
    }

    /// <summary>The persisted offset of each upload whose bytes file is still there (it may hold more while an append runs).</summary>
    private protected override Task<long> UnfinishedUploadBytesAsync(string userKey, CancellationToken cancellationToken)
    {
        long total = 0;
        var uploadDirectory = Path.Combine(UploadsDirectory, userKey);
        if (Directory.Exists(uploadDirectory))
        {
            foreach (var statePath in Directory.EnumerateFiles(uploadDirectory, "*.json"))
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (ReadUploadState(statePath) is { } upload && File.Exists(Path.ChangeExtension(statePath, ".bin")))
                {
                    total += upload.Offset;
                }
            }
        }

        return Task.FromResult(total);
    }

    /// <summary>
    /// Bytes files whose upload has no state: a crash between creating the two (a creation, a concatenation)
    /// or between removing them (termination, expiry). Nothing can reach them; removes them, returns how many.
    /// </summary>
    private int RemoveBytesWithoutState()
    {
        var removed = 0;
        if (Directory.Exists(UploadsDirectory))
        {
            foreach (var bytesPath in Directory.EnumerateFiles(UploadsDirectory, "*.bin", SearchOption.AllDirectories))
            {
                if (!File.Exists(Path.ChangeExtension(bytesPath, ".json")))
                {
                    removed += TryDelete(bytesPath) ? 1 : 0;
                }
            }
        }

        return removed;
    }

    /// <summary>Upload ids under which commits may have moved bytes into a blob without a record yet (see <see cref="Upload.CommitBytesAsync"/>).</summary>
    private HashSet<string> ClaimedContentIds()
    {
        var claimed = new HashSet<string>(StringComparer.Ordinal);
        if (Directory.Exists(UploadsDirectory))
        {
            foreach (var statePath in Directory.EnumerateFiles(UploadsDirectory, "*.json", SearchOption.AllDirectories))
            {
                if (ReadUploadState(statePath) is { IsCommitted: false, IsPartial: false } upload)
                {
                    claimed.Add(upload.Id);
                }
            }
        }

        return claimed;
    }

    private UploadPaths LocateUpload(UserId user, UploadId id)
    {
        var directory = Path.Combine(UploadsDirectory, UserKey(user));
        return new UploadPaths(Path.Combine(directory, id + ".json"), Path.Combine(directory, id + ".bin"));
    }

    private TusUploadInfo? ReadUploadState(string path) => ReadJson(path, TusUploadInfoJson.Default.TusUploadInfo);

    private sealed record UploadPaths(string StatePath, string BytesPath);

    /// <summary>An upload on disk: its state file and its bytes file.</summary>
    private sealed class Upload(FileSystemFileStore store, UserId user, UploadPaths paths, TusUploadInfo info) : TusUpload(info)
    {
        public UploadPaths Paths => paths;

        private protected override Task<UploadWriter> OpenWriterAsync(CancellationToken cancellationToken)
        {
            var file = new FileStream(paths.BytesPath, new FileStreamOptions
            {
                Mode = FileMode.Open,
                Access = FileAccess.Write,
                Share = FileShare.None,
                BufferSize = 0, // the copy writes in large chunks itself
            });
            file.SetLength(Info.Offset); // what a crash left past the persisted offset goes
            file.Position = Info.Offset;
            return Task.FromResult<UploadWriter>(new Writer(this, file, Info.Offset));
        }

        public override async Task CommitAsync(string? sha256, CancellationToken cancellationToken) =>
            Info = await CommitBytesAsync(Info, sha256, cancellationToken);

        public override Task TerminateAsync(CancellationToken cancellationToken)
        {
            store.TryDelete(paths.StatePath);
            store.TryDelete(paths.BytesPath);
            return Task.CompletedTask;
        }

        /// <summary>
        /// Moves the complete bytes into the blob named by the upload id and switches the file record to it.
        /// Safe to repeat: when the bytes file is gone, an earlier call moved it, and this one only finishes
        /// what that left. The committed state is not written; <see cref="AsFilesSay"/> derives it from the files.
        /// </summary>
        public async Task<TusUploadInfo> CommitBytesAsync(TusUploadInfo upload, string? sha256, CancellationToken cancellationToken)
        {
            var file = FileKey.Of(user, upload.FileName!);
            var committed = upload with { Offset = upload.Length ?? upload.Offset, IsCommitted = true };
            var blobPath = store.BlobPath(file, upload.Id);
            var source = paths.BytesPath;
            if (!File.Exists(source))
            {
                // An earlier commit moved the bytes; the process may have stopped before its record switch.
                source = blobPath;
                var current = store.ReadRecord(store.MetaPath(file));
                if (current?.ContentId == upload.Id
                    || !File.Exists(source)
                    || (current is not null && current.CreatedAt.UtcDateTime > File.GetLastWriteTimeUtc(source)))
                {
                    // Switched already (and perhaps replaced or deleted since by a newer save): nothing to redo.
                    return committed;
                }
            }

            if (sha256 is null)
            {
                await using var bytes = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan);
                (_, sha256) = await HashingCopy.CopyAsync(bytes, Stream.Null, long.MaxValue, cancellationToken);
            }

            await using var blob = new StagedBlob(store, null, paths.BytesPath, blobPath, ownsStaged: false);
            await store.CommitAsync(file, blob,
                new FileRecord(upload.FileName!, committed.Offset, sha256, upload.ContentType!, store.Time.GetUtcNow(), upload.Id),
                CancellationToken.None);
            return committed;
        }

        public void Persist(TusUploadInfo upload) =>
            store.WriteJsonAtomically(paths.StatePath, upload, TusUploadInfoJson.Default.TusUploadInfo);
    }

    private sealed class Writer(Upload upload, FileStream file, long start) : UploadWriter
    {
        public override Stream Destination => file;

        public override long Position => file.Position;

        public override Task<TusUploadInfo> PersistAsync(TusUploadInfo info)
        {
            file.SetLength(info.Offset);
            file.Flush(flushToDisk: true);
            upload.Persist(info);
            return Task.FromResult(info);
        }

        public override Task DiscardAsync()
        {
            file.SetLength(start);
            return Task.CompletedTask;
        }

        /// <summary>
        /// No state is written: until the commit moves the bytes into the blob, the state keeps the previous
        /// offset, so a crash in between only makes the client send the last chunk again.
        /// </summary>
        public override async Task<TusUploadInfo> CommitAsync(TusUploadInfo info, string? sha256)
        {
            await file.DisposeAsync();
            return await upload.CommitBytesAsync(info, sha256, CancellationToken.None);
        }

        public override ValueTask DisposeAsync() => file.DisposeAsync();
    }
}

// Every field of the state must be there (a state written by an older layout reads as unreadable: logged, and
// the upload is gone, as after its expiry, rather than half-understood).
[JsonSourceGenerationOptions(RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(TusUploadInfo))]
internal sealed partial class TusUploadInfoJson : JsonSerializerContext;
