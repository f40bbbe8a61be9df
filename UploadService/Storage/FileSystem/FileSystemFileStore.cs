using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace UploadService.Storage;

/// <summary>
/// Stores files on a local filesystem. No client string ever becomes part of a path:
/// <code>
/// {root}/tmp/{guid}.upload | {guid}.json                    in-flight writes, all on the same volume
/// {root}/users/{sha256(userId)}/meta/{sha256(name)}.json    the record: name, size, sha256, type, time, contentId
/// {root}/users/{sha256(userId)}/blobs/{sha256(name)}.{contentId}   the bytes of one version
/// </code>
/// Overwrite and crash semantics: a save streams into a temp file (hashing as it goes) and writes the new
/// record into another; both are fsynced (side by side: the disk flushes them together) before either is
/// renamed: the bytes to a new, never-reused blob, then the record over the old one, and the previous blob
/// is deleted after that switch. A reader therefore sees either the old record and
/// old bytes or the new record and new bytes, never a mix or a partial file; a failed or aborted save
/// removes its temp file and leaves the previous version untouched. A crash at any point leaves the old
/// or the new version intact plus, at worst, orphaned temp/blob files, which <see cref="Open"/> sweeps. Directory entries are not fsynced, so after a power loss the latest completed
/// save may be rolled back to the previous version (never to a corrupt one).
/// One process owns a root: opening the store clears <c>tmp/</c>.
/// </summary>
public sealed partial class FileSystemFileStore : FileStore
{
    private readonly string _root;
    private readonly string _tempDirectory;
    private readonly string _usersDirectory;

    public FileSystemFileStore(string root, TimeProvider? time = null, ILogger<FileSystemFileStore>? logger = null)
        : base(time, logger)
    {
        _root = Path.GetFullPath(root);
        _tempDirectory = Path.Combine(_root, "tmp");
        _usersDirectory = Path.Combine(_root, "users");
    }

    public override void Open() => Recover();

    private protected override Task<FileRecord?> ReadRecordAsync(FileKey file, CancellationToken cancellationToken) =>
        Task.FromResult(ReadRecord(MetaPath(file)));

    /// <summary>The record in a temp file on the same volume, fsynced: the switch is one rename.</summary>
    private protected override Task<PendingRecord> StageRecordAsync(FileKey file, FileRecord record) =>
        Task.Run<PendingRecord>(() => new StagedFile(this, StageJson(record, FileRecordJson.Default.FileRecord), MetaPath(file)));

    private protected override Task DeleteRecordAsync(FileKey file, CancellationToken cancellationToken)
    {
        File.Delete(MetaPath(file));
        return Task.CompletedTask;
    }

    private protected override async IAsyncEnumerable<FileRecord> ReadRecordsAsync(
        string userKey, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var metaDirectory = Path.Combine(_usersDirectory, userKey, "meta");
        if (!Directory.Exists(metaDirectory))
        {
            yield break;
        }

        foreach (var path in Directory.EnumerateFiles(metaDirectory, "*.json"))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (ReadRecord(path) is { } record)
            {
                yield return record;
            }
        }

        await Task.CompletedTask;
    }

    /// <summary>A temp file on the same volume; publishing fsyncs it and renames it to the blob.</summary>
    private protected override Task<PendingBlob> CreateBlobAsync(FileKey file, string contentId, CancellationToken cancellationToken)
    {
        var tempPath = Path.Combine(_tempDirectory, Guid.NewGuid().ToString("N") + ".upload");
        var stream = new FileStream(tempPath, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 0, // the copy already writes in large chunks
        });
        return Task.FromResult<PendingBlob>(new StagedBlob(this, stream, tempPath, BlobPath(file, contentId), ownsStaged: true));
    }

    private protected override Stream? OpenBlob(FileKey file, FileRecord record)
    {
        try
        {
            return new FileStream(BlobPath(file, record.ContentId), new FileStreamOptions
            {
                Mode = FileMode.Open,
                Access = FileAccess.Read,
                Share = FileShare.Read | FileShare.Delete,
                BufferSize = 0,
                Options = FileOptions.SequentialScan,
            });
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    private protected override Task DeleteBlobAsync(FileKey file, FileRecord record)
    {
        TryDelete(BlobPath(file, record.ContentId));
        return Task.CompletedTask;
    }

    /// <summary>Blob sizes from the directory; no record is read.</summary>
    private protected override Task<long> FileBytesAsync(string userKey, CancellationToken cancellationToken)
    {
        long total = 0;
        var blobDirectory = Path.Combine(_usersDirectory, userKey, "blobs");
        if (Directory.Exists(blobDirectory))
        {
            foreach (var blobPath in Directory.EnumerateFiles(blobDirectory))
            {
                cancellationToken.ThrowIfCancellationRequested();
                try
                {
                    total += new FileInfo(blobPath).Length;
                }
                catch (FileNotFoundException)
                {
                    // replaced or deleted meanwhile
                }
            }
        }

        return Task.FromResult(total);
    }

    /// <summary>
    /// Brings the root back to a consistent state after a crash: removes temp files, tus bytes files without
    /// an upload state, blobs that no record points at, and records whose blob is missing or which cannot be read.
    /// </summary>
    private void Recover()
    {
        Directory.CreateDirectory(_tempDirectory);
        Directory.CreateDirectory(_usersDirectory);

        var removed = 0;
        foreach (var path in Directory.EnumerateFiles(_tempDirectory))
        {
            removed += TryDelete(path) ? 1 : 0;
        }

        removed += RemoveBytesWithoutState();
        var claimedContentIds = ClaimedContentIds();

        foreach (var userDirectory in Directory.EnumerateDirectories(_usersDirectory))
        {
            var metaDirectory = Path.Combine(userDirectory, "meta");
            var blobDirectory = Path.Combine(userDirectory, "blobs");
            var live = new HashSet<string>(StringComparer.Ordinal);

            if (Directory.Exists(metaDirectory))
            {
                foreach (var metaPath in Directory.EnumerateFiles(metaDirectory, "*.json"))
                {
                    var record = ReadRecord(metaPath);
                    var blobName = record is null
                        ? null
                        : Path.GetFileNameWithoutExtension(metaPath) + "." + record.ContentId;
                    if (blobName is not null && File.Exists(Path.Combine(blobDirectory, blobName)))
                    {
                        live.Add(blobName);
                    }
                    else
                    {
                        removed += TryDelete(metaPath) ? 1 : 0;
                    }
                }
            }

            if (Directory.Exists(blobDirectory))
            {
                foreach (var blobPath in Directory.EnumerateFiles(blobDirectory))
                {
                    var name = Path.GetFileName(blobPath);
                    if (!live.Contains(name) && !claimedContentIds.Contains(Path.GetExtension(name).TrimStart('.')))
                    {
                        removed += TryDelete(blobPath) ? 1 : 0;
                    }
                }
            }
        }

        if (removed > 0)
        {
            LogRecovered(Logger, removed, _root);
        }
    }

    private string MetaPath(FileKey file) => Path.Combine(_usersDirectory, file.UserKey, "meta", file.NameKey + ".json");

    private string BlobPath(FileKey file, string contentId) =>
        Path.Combine(_usersDirectory, file.UserKey, "blobs", file.NameKey + "." + contentId);

    private FileRecord? ReadRecord(string path) => ReadJson(path, FileRecordJson.Default.FileRecord);

    /// <summary>
    /// Temp file on the same volume, fsync (unless not <paramref name="durable"/>), rename over: readers see
    /// the old or the new document.
    /// </summary>
    private void WriteJsonAtomically<T>(string path, T value, JsonTypeInfo<T> typeInfo, bool durable = true)
    {
        var tempPath = StageJson(value, typeInfo, durable);
        try
        {
            File.Move(tempPath, path, overwrite: true);
        }
        catch
        {
            TryDelete(tempPath);
            throw;
        }
    }

    /// <summary>Writes the document to a new temp file on the same volume (fsynced unless not <paramref name="durable"/>); returns its path.</summary>
    private string StageJson<T>(T value, JsonTypeInfo<T> typeInfo, bool durable = true)
    {
        var tempPath = Path.Combine(_tempDirectory, Guid.NewGuid().ToString("N") + ".json");
        try
        {
            using var file = new FileStream(tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            JsonSerializer.Serialize(file, value, typeInfo);
            if (durable)
            {
                file.Flush(flushToDisk: true);
            }
        }
        catch
        {
            TryDelete(tempPath);
            throw;
        }

        return tempPath;
    }

    /// <summary>The document, or null when it is missing or unreadable (logged: documents are only ever replaced by rename, so that is outside damage, not a torn write).</summary>
    private T? ReadJson<T>(string path, JsonTypeInfo<T> typeInfo) where T : class
    {
        try
        {
            // A few hundred bytes: a synchronous read is cheaper than the async machinery.
            return JsonSerializer.Deserialize(File.ReadAllBytes(path), typeInfo);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (JsonException ex)
        {
            LogUnreadableRecord(ex, path);
            return null;
        }
    }

    private bool TryDelete(string path)
    {
        try
        {
            File.Delete(path);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogDeleteFailed(ex, path);
            return false;
        }
    }

    private static void FlushToDisk(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 0);
        file.Flush(flushToDisk: true);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Recovered file store {Root}: removed {Count} orphaned entries")]
    private static partial void LogRecovered(ILogger logger, int count, string root);

    /// <summary>A document staged in <c>tmp/</c>: switching renames it over <paramref name="path"/>.</summary>
    private sealed class StagedFile(FileSystemFileStore store, string stagedPath, string path) : PendingRecord
    {
        private bool _switched;

        public override Task SwitchAsync()
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.Move(stagedPath, path, overwrite: true);
            _switched = true;
            return Task.CompletedTask;
        }

        public override ValueTask DisposeAsync()
        {
            if (!_switched)
            {
                store.TryDelete(stagedPath);
            }

            return ValueTask.CompletedTask;
        }
    }

    /// <summary>
    /// Bytes in a file on the store's volume (a temp file of a save, or a tus upload's bytes file):
    /// publishing fsyncs them and renames them to <paramref name="blobPath"/>; retracting renames them back.
    /// A publish repeated after a crash between the rename and the record switch finds them moved already
    /// (tus commits name the blob after the upload, so <see cref="Open"/> keeps it meanwhile). Only
    /// a save's temp file is removed when the blob is disposed unpublished (<paramref name="ownsStaged"/>).
    /// </summary>
    private sealed class StagedBlob(FileSystemFileStore store, FileStream? stream, string stagedPath, string blobPath, bool ownsStaged)
        : PendingBlob
    {
        public override Stream Destination => stream ?? throw new InvalidOperationException("These bytes are written already.");

        public override async Task PublishAsync(CancellationToken cancellationToken)
        {
            if (stream is not null)
            {
                await stream.DisposeAsync();
            }

            var alreadyMoved = !File.Exists(stagedPath) && File.Exists(blobPath);
            FlushToDisk(alreadyMoved ? blobPath : stagedPath);
            if (!alreadyMoved)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(blobPath)!);
                File.Move(stagedPath, blobPath);
            }
        }

        public override Task RetractAsync()
        {
            // Put the bytes back where they were staged: the caller's cleanup (or retry) decides their fate.
            try
            {
                File.Move(blobPath, stagedPath);
            }
            catch (IOException) when (ownsStaged)
            {
                store.TryDelete(blobPath); // a save's bytes: the save failed
            }
            catch (IOException)
            {
                // A tus upload's only copy of its bytes: left in the blob, which the upload claims (Open keeps
                // it), so that the next HEAD or PATCH commits it.
            }

            return Task.CompletedTask;
        }

        public override async ValueTask DisposeAsync()
        {
            if (stream is not null)
            {
                await stream.DisposeAsync();
            }

            if (ownsStaged && File.Exists(stagedPath))
            {
                store.TryDelete(stagedPath);
            }
        }
    }
}
