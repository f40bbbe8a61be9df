using System.Text.Json;
using System.Text.Json.Serialization;
using UploadService.Security;

namespace UploadService.Storage;

/// <summary>
/// Resumable uploads on the filesystem, beside the files on the same volume:
/// <code>
/// {root}/uploads/{sha256(userId)}/{id}.json   the state (offset, length, metadata, expiry), replaced atomically
/// {root}/uploads/{sha256(userId)}/{id}.bin    the bytes received so far
/// </code>
/// An append truncates the bytes file to the persisted offset (dropping whatever a crash left past it),
/// writes, fsyncs, and only then replaces the state: the persisted offset never covers bytes that are not
/// on disk. Completion commits the bytes as a file by rename (no copy); their SHA-256 is the one the appends
/// computed as the bytes arrived (<see cref="RunningHashes"/>), or read from the file where this process
/// did not see every byte.
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

    public Task<UploadRecord?> GetUploadAsync(UserId user, string id, CancellationToken cancellationToken) =>
        Task.FromResult(ReadUploadState(LocateUpload(user, id).StatePath));

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

        file.Flush(flushToDisk: true);
        var appended = upload with { Offset = file.Position, ExpiresAt = expiresAt };
        if (appended is { IsComplete: true, IsPartial: false, ContentId: null })
        {
            // Claimed with the offset, in the same write: completion then needs no write of its own before
            // the bytes move (see Finish).
            appended = appended with { ContentId = Guid.NewGuid().ToString("N") };
        }

        WriteUploadState(statePath, appended);
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

    public async Task<(UploadRecord Upload, StoredFile File)> CompleteUploadAsync(
        UserId user, UploadRecord upload, FileName file, string contentType, CancellationToken cancellationToken)
    {
        var (statePath, bytesPath) = LocateUpload(user, upload.Id);
        // A completion interrupted by a crash after its bytes moved finds them in the claimed blob.
        var source = upload.ContentId is { } claimed && !File.Exists(bytesPath)
            ? Locate(user, file).BlobPath(claimed)
            : bytesPath;
        var sha256 = _runningHashes.Finish(upload);
        if (sha256 is null)
        {
            await using var bytes = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan);
            (_, sha256) = await HashingCopy.CopyAsync(bytes, Stream.Null, long.MaxValue, cancellationToken);
        }

        return Finish(user, upload, statePath, bytesPath, file, contentType, sha256);
    }

    public async Task<(UploadRecord Upload, StoredFile File)> ConcatenateAsync(
        UserId user, UploadRecord final, IReadOnlyList<UploadRecord> partials, FileName file, string contentType,
        long maxBytes, CancellationToken cancellationToken)
    {
        var (statePath, bytesPath) = LocateUpload(user, final.Id);
        Directory.CreateDirectory(Path.GetDirectoryName(statePath)!);
        WriteUploadState(statePath, final);
        string sha256;
        await using (var destination = new FileStream(bytesPath, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 0,
        }))
        {
            // One pass over all partials: the hash of the concatenation is the file's SHA-256.
            var concatenation = new SequentialStream(partials.Select(partial => LocateUpload(user, partial.Id).BytesPath)
                .Select(path => (Func<Stream>)(() => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan))));
            await using (concatenation)
            {
                (_, sha256) = await HashingCopy.CopyAsync(concatenation, destination, maxBytes, cancellationToken);
            }

            destination.Flush(flushToDisk: true);
        }

        var result = Finish(user, final with { Offset = final.Length!.Value }, statePath, bytesPath, file, contentType, sha256);
        foreach (var partial in partials)
        {
            await DeleteUploadAsync(user, partial.Id, CancellationToken.None);
        }

        return result;
    }

    private (UploadRecord Upload, StoredFile File) Finish(
        UserId user, UploadRecord upload, string statePath, string bytesPath, FileName file, string contentType, string sha256)
    {
        // Claim the blob before moving the bytes into it: a crash between the move and the record switch
        // then leaves a blob that Recover keeps and the next HEAD commits, instead of an orphan it deletes.
        var claimed = upload;
        if (upload.ContentId is null)
        {
            claimed = upload with { ContentId = Guid.NewGuid().ToString("N") };
            WriteUploadState(statePath, claimed);
        }

        var stored = Commit(Locate(user, file), bytesPath,
            new StoredFile(file.Value, upload.Offset, sha256, contentType, _time.GetUtcNow()), claimed.ContentId);
        var completed = claimed with { FileName = stored.Name };
        WriteUploadState(statePath, completed);
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

    /// <summary>Content ids that unfinished tus completions have claimed (see <see cref="Finish"/>).</summary>
    private HashSet<string> ClaimedContentIds()
    {
        var claimed = new HashSet<string>(StringComparer.Ordinal);
        if (Directory.Exists(UploadsDirectory))
        {
            foreach (var statePath in Directory.EnumerateFiles(UploadsDirectory, "*.json", SearchOption.AllDirectories))
            {
                if (ReadUploadState(statePath) is { ContentId: { } contentId, FileName: null })
                {
                    claimed.Add(contentId);
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

    private string UserUploadsDirectory(UserId user) => Path.Combine(UploadsDirectory, HexSha256(user.Value));

    private void WriteUploadState(string path, UploadRecord upload, bool durable = true) =>
        WriteJsonAtomically(path, upload, UploadRecordJson.Default.UploadRecord, durable);

    private UploadRecord? ReadUploadState(string path) => ReadJson(path, UploadRecordJson.Default.UploadRecord);
}

[JsonSerializable(typeof(UploadRecord))]
internal sealed partial class UploadRecordJson : JsonSerializerContext;
