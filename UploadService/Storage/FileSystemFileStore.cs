using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.Logging.Abstractions;
using UploadService.Security;

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
/// or the new version intact plus, at worst, orphaned temp/blob files, which <see cref="Recover"/> sweeps
/// when the store opens. Directory entries are not fsynced, so after a power loss the latest completed
/// save may be rolled back to the previous version (never to a corrupt one).
/// One process owns a root: opening the store clears <c>tmp/</c>.
/// </summary>
public sealed partial class FileSystemFileStore : IFileStore
{
    private const int GateCount = 64;
    private const int OpenAttempts = 3;

    private readonly string _root;
    private readonly string _tempDirectory;
    private readonly string _usersDirectory;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    // Serializes the short record switch (save commit, delete) per name; bytes stream outside it.
    private readonly SemaphoreSlim[] _gates =
        Enumerable.Range(0, GateCount).Select(_ => new SemaphoreSlim(1, 1)).ToArray();

    public FileSystemFileStore(string root, TimeProvider? time = null, ILogger<FileSystemFileStore>? logger = null)
    {
        _root = Path.GetFullPath(root);
        _tempDirectory = Path.Combine(_root, "tmp");
        _usersDirectory = Path.Combine(_root, "users");
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger<FileSystemFileStore>.Instance;
        Recover();
    }

    public string Root => _root;

    public async Task<StoredFile> SaveAsync(
        UserId user, FileName name, Stream content, string contentType, long maxBytes, CancellationToken cancellationToken)
    {
        var location = Locate(user, name);
        var tempPath = Path.Combine(_tempDirectory, Guid.NewGuid().ToString("N") + ".upload");
        try
        {
            long size;
            string sha256;
            await using (var file = new FileStream(tempPath, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
                BufferSize = 0, // the copy already writes in large chunks
            }))
            {
                (size, sha256) = await HashingCopy.CopyAsync(content, file, maxBytes, cancellationToken);
            }

            var record = new FileRecord(name.Value, size, sha256, contentType, _time.GetUtcNow(), Guid.NewGuid().ToString("N"));
            return await CommitAsync(location, tempPath, record);
        }
        finally
        {
            TryDelete(tempPath); // gone already when committed
        }
    }

    /// <summary>
    /// Makes the bytes at <paramref name="stagedPath"/> (same volume) the current version of the file: fsyncs
    /// them while the record is written and fsynced beside them, then renames them to a new, never-reused
    /// blob, switches the record, and drops the previous blob. Not cancellable: once the bytes are moved the
    /// switch must happen or be undone. A caller that must survive a crash between the move and the switch
    /// (a tus completion) uses a content id it can find again (the upload id), so <see cref="Recover"/> keeps
    /// that blob and a second call finishes the switch.
    /// </summary>
    private async Task<StoredFile> CommitAsync(Location location, string stagedPath, FileRecord record)
    {
        Directory.CreateDirectory(location.BlobDirectory);
        Directory.CreateDirectory(location.MetaDirectory);
        var blobPath = location.BlobPath(record.ContentId);
        var alreadyMoved = !File.Exists(stagedPath) && File.Exists(blobPath);
        var stagedRecord = Task.Run(() => StageJson(record, FileRecordJson.Default.FileRecord));
        var switched = false;
        try
        {
            FlushToDisk(alreadyMoved ? blobPath : stagedPath);
            var recordPath = await stagedRecord;
            if (!alreadyMoved)
            {
                File.Move(stagedPath, blobPath);
            }

            FileRecord? previous;
            var gate = GateFor(location);
            await gate.WaitAsync(CancellationToken.None);
            try
            {
                previous = ReadRecord(location.MetaPath);
                File.Move(recordPath, location.MetaPath, overwrite: true);
                switched = true;
            }
            catch
            {
                // Put the bytes back where the caller had them: its own cleanup (or retry) decides their fate.
                try { File.Move(blobPath, stagedPath); } catch (IOException) { TryDelete(blobPath); }
                throw;
            }
            finally
            {
                gate.Release();
            }

            if (previous is not null && previous.ContentId != record.ContentId)
            {
                TryDelete(location.BlobPath(previous.ContentId));
            }

            return record.ToStoredFile();
        }
        finally
        {
            if (!switched && await stagedRecord.ContinueWith(staged => staged.IsCompletedSuccessfully ? staged.Result : null, TaskScheduler.Default) is { } unused)
            {
                TryDelete(unused); // the bytes could not be made durable or moved: no switch
            }
        }
    }

    private static void FlushToDisk(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 0);
        file.Flush(flushToDisk: true);
    }

    public Task<FileContent?> OpenReadAsync(UserId user, FileName name, CancellationToken cancellationToken)
    {
        var location = Locate(user, name);
        // A concurrent replace or delete may remove the blob between reading the record and opening
        // the blob; reading the record again then finds the new version (or none).
        for (var attempt = 0; attempt < OpenAttempts; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var record = ReadRecord(location.MetaPath);
            if (record is null)
            {
                return Task.FromResult<FileContent?>(null);
            }

            try
            {
                var stream = new FileStream(location.BlobPath(record.ContentId), new FileStreamOptions
                {
                    Mode = FileMode.Open,
                    Access = FileAccess.Read,
                    Share = FileShare.Read | FileShare.Delete,
                    BufferSize = 0,
                    Options = FileOptions.SequentialScan,
                });
                return Task.FromResult<FileContent?>(new FileContent(record.ToStoredFile(), stream));
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
            }
        }

        return Task.FromResult<FileContent?>(null);
    }

    public async Task<bool> DeleteAsync(UserId user, FileName name, CancellationToken cancellationToken)
    {
        var location = Locate(user, name);
        FileRecord? record;
        var gate = GateFor(location);
        await gate.WaitAsync(cancellationToken);
        try
        {
            record = ReadRecord(location.MetaPath);
            if (record is null)
            {
                return false;
            }

            File.Delete(location.MetaPath);
        }
        finally
        {
            gate.Release();
        }

        TryDelete(location.BlobPath(record.ContentId));
        return true;
    }

    public Task<FileListing> ListAsync(
        UserId user, string prefix, int limit, string? startAfter, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var metaDirectory = Path.Combine(UserDirectory(user), "meta");
        if (!Directory.Exists(metaDirectory))
        {
            return Task.FromResult(new FileListing([], null));
        }

        // Every record is read and filtered: fine for one user's files on a container disk. A larger
        // catalogue would want an index; the S3 backend gets prefix and start-after from the service.
        var matches = new List<StoredFile>();
        foreach (var path in Directory.EnumerateFiles(metaDirectory, "*.json"))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var record = ReadRecord(path);
            if (record is null
                || !record.Name.StartsWith(prefix, StringComparison.Ordinal)
                || (startAfter is not null && string.CompareOrdinal(record.Name, startAfter) <= 0))
            {
                continue;
            }

            matches.Add(record.ToStoredFile());
        }

        matches.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        if (matches.Count <= limit)
        {
            return Task.FromResult(new FileListing(matches, null));
        }

        var page = matches.GetRange(0, limit);
        return Task.FromResult(new FileListing(page, page[^1].Name));
    }

    public Task<long> GetUsageAsync(UserId user, CancellationToken cancellationToken)
    {
        // Blob sizes from the directory (no record is read), plus the persisted offset of each unfinished
        // upload: its bytes file may hold more while an append runs, which the quota counts as in flight.
        long total = 0;
        var blobDirectory = Path.Combine(UserDirectory(user), "blobs");
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

        var uploadDirectory = UserUploadsDirectory(user);
        if (Directory.Exists(uploadDirectory))
        {
            foreach (var statePath in Directory.EnumerateFiles(uploadDirectory, "*.json"))
            {
                if (ReadUploadState(statePath) is { FileName: null } upload && File.Exists(Path.ChangeExtension(statePath, ".bin")))
                {
                    total += upload.Offset; // a finished upload's bytes are in its blob, counted above
                }
            }
        }

        return Task.FromResult(total);
    }

    /// <summary>
    /// Brings the root back to a consistent state after a crash: removes temp files, tus bytes files without
    /// an upload state, blobs that no record points at, and records whose blob is missing or which cannot be read.
    /// </summary>
    public void Recover()
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
            LogRecovered(removed, _root);
        }
    }

    private Location Locate(UserId user, FileName name)
    {
        var userDirectory = UserDirectory(user);
        return new Location(
            Path.Combine(userDirectory, "meta"),
            Path.Combine(userDirectory, "blobs"),
            HexSha256(name.Value));
    }

    private string UserDirectory(UserId user) => Path.Combine(_usersDirectory, HexSha256(user.Value));

    private SemaphoreSlim GateFor(Location location) =>
        _gates[(uint)HashCode.Combine(location.MetaDirectory, location.NameKey) % GateCount];

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

    private static string HexSha256(string value) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)));

    [LoggerMessage(Level = LogLevel.Information, Message = "Recovered file store {Root}: removed {Count} orphaned entries")]
    private partial void LogRecovered(int count, string root);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Unreadable file record {Path} ignored")]
    private partial void LogUnreadableRecord(Exception exception, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not delete {Path}")]
    private partial void LogDeleteFailed(Exception exception, string path);

    private sealed record Location(string MetaDirectory, string BlobDirectory, string NameKey)
    {
        public string MetaPath => Path.Combine(MetaDirectory, NameKey + ".json");

        public string BlobPath(string contentId) => Path.Combine(BlobDirectory, NameKey + "." + contentId);
    }
}

/// <summary>The on-disk record (the sidecar): the public description plus the current blob's id.</summary>
internal sealed record FileRecord(
    string Name, long Size, string Sha256, string ContentType, DateTimeOffset CreatedAt, string ContentId)
{
    public StoredFile ToStoredFile() => new(Name, Size, Sha256, ContentType, CreatedAt);
}

[JsonSerializable(typeof(FileRecord))]
internal sealed partial class FileRecordJson : JsonSerializerContext;
