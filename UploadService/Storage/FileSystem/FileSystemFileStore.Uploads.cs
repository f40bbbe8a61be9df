using System.Text.Json;
using System.Text.Json.Serialization;
using UploadService.Security;

namespace UploadService.Storage;

/// <summary>
/// Resumable uploads on the filesystem, beside the files on the same volume:
/// <code>
/// {root}/uploads/{sha256(userId)}/{id}.json   the state (offset, length, metadata, expiry), replaced atomically
/// {root}/uploads/{sha256(userId)}/{id}.bin    the bytes received so far, while the upload is unfinished
/// </code>
/// An append truncates the bytes file to the persisted offset (dropping whatever a crash left past it),
/// writes, fsyncs, and only then replaces the state: the persisted offset never covers bytes that are not
/// on disk. The append that brings the last byte writes no state: completion fsyncs the bytes beside the new
/// file record, renames the bytes file into the file's blob (content id = upload id) and switches the
/// record, and from then on the missing bytes file is what says "every byte arrived" (<see cref="Settled"/>).
/// So a one-chunk upload creates three files (state, bytes, record), replaces none and waits for one round
/// of fsyncs (two files flushed together), as a PUT does. Replacing files
/// is what small uploads avoid: each replaced file frees an inode, and ext4 without a journal passes over
/// recently freed inodes when it allocates new ones, so every replacement slows the creations after it. The
/// SHA-256 is the one the appends computed as the bytes arrived (<see cref="RunningHashes"/>), or read from
/// the file where this process did not see every byte.
/// </summary>
public sealed partial class FileSystemFileStore : IUploadStore
{
    private readonly RunningHashes _runningHashes = new();

    private string UploadsDirectory => Path.Combine(_root, "uploads");

    public Task<UploadRecord> CreateUploadAsync(UserId user, UploadRecord upload, CancellationToken cancellationToken)
    {
        var (statePath, bytesPath) = LocateUpload(user, upload.Id);
        Directory.CreateDirectory(Path.GetDirectoryName(statePath)!);
        using (new FileStream(bytesPath, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
        }

        // Not fsynced: a creation acknowledges no bytes, and directory entries are never fsynced, so a power
        // loss could take a new upload either way (its client then finds it gone and starts again). The
        // first append's state write is durable.
        try
        {
            WriteUploadState(statePath, upload, durable: false);
        }
        catch
        {
            TryDelete(bytesPath); // no state, no upload (a full disk, typically)
            throw;
        }

        return Task.FromResult(upload);
    }

    public Task<UploadRecord?> GetUploadAsync(UserId user, string id, CancellationToken cancellationToken)
    {
        var (statePath, bytesPath) = LocateUpload(user, id);
        return Task.FromResult(ReadUploadState(statePath) is { } upload ? Settled(upload, bytesPath) : null);
    }

    /// <summary>
    /// The upload as its files say it is: a (non-partial) upload whose bytes file is gone had every byte
    /// durable and moved them into its blob (<see cref="CompleteUploadAsync"/>), so it is complete, whatever
    /// offset its state last recorded. Whether it has become a file yet, completing it again tells.
    /// </summary>
    private static UploadRecord Settled(UploadRecord upload, string bytesPath) =>
        upload is { FileName: null, IsPartial: false, Length: { } length } && !File.Exists(bytesPath)
            ? upload with { Offset = length, ContentId = upload.ContentId ?? upload.Id }
            : upload;

    public async Task<UploadRecord> AppendAsync(
        UserId user, UploadRecord upload, Stream content, long maxBytes, ChunkChecksum? checksum,
        DateTimeOffset expiresAt, CancellationToken cancellationToken)
    {
        var (statePath, bytesPath) = LocateUpload(user, upload.Id);
        using var checksumHash = checksum?.CreateHash();
        var running = _runningHashes.Take(upload);
        await using var file = new FileStream(bytesPath, new FileStreamOptions
        {
            Mode = FileMode.Open,
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 0, // the copy writes in large chunks itself
        });
        file.SetLength(upload.Offset);
        file.Position = upload.Offset;
        try
        {
            await HashingCopy.CopyAsync(content, file, maxBytes, [running?.Hash, checksumHash], cancellationToken);
        }
        catch (Exception ex) when (checksum is null && file.Position > upload.Offset && HashingCopy.KeepsWhatArrived(ex))
        {
            // The connection broke (or the chunk ran past the limit): keep what arrived, as tus intends,
            // except beyond the limit. A spent quota or a full disk discards the chunk (below).
            running?.Dispose();
            var kept = upload.Offset + Math.Min(file.Position - upload.Offset, maxBytes);
            file.SetLength(kept);
            file.Flush(flushToDisk: true);
            WriteUploadState(statePath, upload with { Offset = kept, ExpiresAt = expiresAt });
            throw;
        }
        catch (Exception)
        {
            running?.Dispose();
            file.SetLength(upload.Offset);
            throw;
        }

        if (checksum is not null && !checksumHash!.GetHashAndReset().AsSpan().SequenceEqual(checksum.Expected))
        {
            running?.Dispose();
            file.SetLength(upload.Offset);
            throw new ChecksumMismatchException(checksum.Algorithm);
        }

        var appended = upload with { Offset = file.Position, ExpiresAt = expiresAt };
        if (appended is { IsComplete: true, IsPartial: false })
        {
            // Every byte is here: completion fsyncs them (beside the file record) and moves them into the blob,
            // and their absence records the offset (see Settled). Until then the state keeps the previous
            // offset, so a crash in between only makes the client send the last chunk again.
            appended = appended with { ContentId = appended.ContentId ?? appended.Id };
        }
        else
        {
            file.Flush(flushToDisk: true);
            WriteUploadState(statePath, appended);
        }

        if (running is not null)
        {
            _runningHashes.Keep(upload.Id, running, appended.Offset);
        }

        return appended;
    }

    public Task<UploadRecord> UpdateUploadAsync(UserId user, UploadRecord upload, CancellationToken cancellationToken)
    {
        WriteUploadState(LocateUpload(user, upload.Id).StatePath, upload);
        return Task.FromResult(upload);
    }

    public Task<(UploadRecord Upload, StoredFile? File)> CompleteUploadAsync(
        UserId user, UploadRecord upload, FileName file, string contentType, CancellationToken cancellationToken) =>
        FinishAsync(user, upload, file, contentType, sha256: null, cancellationToken);

    public async Task<(UploadRecord Upload, StoredFile? File)> ConcatenateAsync(
        UserId user, UploadRecord final, IReadOnlyList<UploadRecord> partials, FileName file, string contentType,
        long maxBytes, CancellationToken cancellationToken)
    {
        var (statePath, bytesPath) = LocateUpload(user, final.Id);
        Directory.CreateDirectory(Path.GetDirectoryName(statePath)!);
        string sha256;
        // The bytes file before the state: a final upload without one would read as complete (see Settled).
        await using (var destination = new FileStream(bytesPath, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 0,
        }))
        {
            WriteUploadState(statePath, final);
            // One pass over all partials: the hash of the concatenation is the file's SHA-256.
            var concatenation = new SequentialStream(partials.Select(partial => LocateUpload(user, partial.Id).BytesPath)
                .Select(path => (Func<Stream>)(() => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan))));
            await using (concatenation)
            {
                (_, sha256) = await HashingCopy.CopyAsync(concatenation, destination, maxBytes, cancellationToken);
            }
        }

        var result = await FinishAsync(user, final with { Offset = final.Length!.Value }, file, contentType, sha256, CancellationToken.None);
        foreach (var partial in partials)
        {
            await DeleteUploadAsync(user, partial.Id, CancellationToken.None);
        }

        return result;
    }

    /// <summary>
    /// Moves the complete bytes into the blob named by the upload's content id (the upload id, or the one its
    /// state claims) and switches the file record to it. Safe to repeat:
    /// when the bytes file is gone, an earlier call moved it, and this one only finishes what that left.
    /// The returned upload is not written back; <see cref="Settled"/> derives it from the files.
    /// </summary>
    private async Task<(UploadRecord Upload, StoredFile? File)> FinishAsync(
        UserId user, UploadRecord upload, FileName file, string contentType, string? sha256, CancellationToken cancellationToken)
    {
        var (_, bytesPath) = LocateUpload(user, upload.Id);
        var fileKey = FileKey.Of(user, file);
        var contentId = upload.ContentId ?? upload.Id;
        var completed = upload with { Offset = upload.Length ?? upload.Offset, ContentId = contentId, FileName = file.Value };
        var blobPath = BlobPath(fileKey, contentId);
        var source = bytesPath;
        if (!File.Exists(bytesPath))
        {
            // An earlier completion moved the bytes; the process may have stopped before its record switch.
            source = blobPath;
            var current = ReadRecord(MetaPath(fileKey));
            if (current?.ContentId == contentId)
            {
                return (completed, current.ToStoredFile());
            }

            if (!File.Exists(source) || (current is not null && current.CreatedAt.UtcDateTime > File.GetLastWriteTimeUtc(source)))
            {
                // The switch happened and a newer save (or a delete) has replaced it since: nothing to redo.
                _runningHashes.Drop(upload.Id);
                return (completed, current?.ToStoredFile());
            }
        }

        sha256 ??= _runningHashes.Finish(upload);
        if (sha256 is null)
        {
            await using var bytes = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan);
            (_, sha256) = await HashingCopy.CopyAsync(bytes, Stream.Null, long.MaxValue, cancellationToken);
        }

        await using var blob = new StagedBlob(this, null, bytesPath, blobPath, ownsStaged: false);
        var stored = await CommitAsync(fileKey, blob,
            new FileRecord(file.Value, completed.Offset, sha256, contentType, Time.GetUtcNow(), contentId), CancellationToken.None);
        return (completed, stored);
    }

    public Task<bool> DeleteUploadAsync(UserId user, string id, CancellationToken cancellationToken)
    {
        var (statePath, bytesPath) = LocateUpload(user, id);
        _runningHashes.Drop(id);
        var existed = File.Exists(statePath);
        TryDelete(statePath);
        TryDelete(bytesPath);
        return Task.FromResult(existed);
    }

    public Task<int> DeleteExpiredUploadsAsync(DateTimeOffset now, Func<string, IDisposable?> tryLock, CancellationToken cancellationToken)
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

            _runningHashes.Drop(Path.GetFileNameWithoutExtension(statePath));
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
                if (ReadUploadState(statePath) is { FileName: null } upload && File.Exists(Path.ChangeExtension(statePath, ".bin")))
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

    /// <summary>Content ids that tus completions may have moved bytes to without a record yet (see <see cref="FinishAsync"/>).</summary>
    private HashSet<string> ClaimedContentIds()
    {
        var claimed = new HashSet<string>(StringComparer.Ordinal);
        if (Directory.Exists(UploadsDirectory))
        {
            foreach (var statePath in Directory.EnumerateFiles(UploadsDirectory, "*.json", SearchOption.AllDirectories))
            {
                if (ReadUploadState(statePath) is { FileName: null, IsPartial: false } upload)
                {
                    claimed.Add(upload.ContentId ?? upload.Id);
                }
            }
        }

        return claimed;
    }

    private (string StatePath, string BytesPath) LocateUpload(UserId user, string id)
    {
        // Ids are generated by the service (hex); checked here too because they arrive in URLs.
        if (id.Length != 32 || !id.All(char.IsAsciiHexDigitLower))
        {
            throw new ArgumentException("Not an upload id.", nameof(id));
        }

        var directory = UserUploadsDirectory(user);
        return (Path.Combine(directory, id + ".json"), Path.Combine(directory, id + ".bin"));
    }

    private string UserUploadsDirectory(UserId user) => Path.Combine(UploadsDirectory, UserKey(user));

    private void WriteUploadState(string path, UploadRecord upload, bool durable = true) =>
        WriteJsonAtomically(path, upload, UploadRecordJson.Default.UploadRecord, durable);

    private UploadRecord? ReadUploadState(string path) => ReadJson(path, UploadRecordJson.Default.UploadRecord);
}

[JsonSerializable(typeof(UploadRecord))]
internal sealed partial class UploadRecordJson : JsonSerializerContext;
