using UploadService.Domain;
using UploadService.Storage;
using UploadService.Tus;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

/// <summary>The shared store suite on the filesystem backend, plus what only a disk can show (paths, crash recovery).</summary>
public sealed class FileSystemFileStoreTests : FileStoreContractTests, IDisposable
{
    private readonly TempDirectory _root = new();
    private readonly FileSystemFileStore _store;

    public FileSystemFileStoreTests() => _store = new FileSystemFileStore(_root.Path).Opened();

    public void Dispose() => _root.Dispose();

    protected override IFileStore Store => _store;

    protected override Task<IReadOnlyList<string>> StoredEntriesAsync() =>
        Task.FromResult<IReadOnlyList<string>>(_root.AllFiles().ToList());

    protected override int StagedCount() => Directory.EnumerateFiles(TempFolder).Count();

    private string TempFolder => Path.Combine(_root.Path, "tmp");

    [Fact]
    public async Task A_reader_that_opened_the_old_version_keeps_reading_it_during_a_replace()
    {
        var first = Bytes(200_000, seed: 1);
        await SaveAsync("alice", "a.bin", first);
        using var open = await _store.OpenReadAsync(User("alice"), File("a.bin"), CancellationToken.None);

        await SaveAsync("alice", "a.bin", Bytes(200_000, seed: 2));

        var copy = new MemoryStream();
        await open!.Content.CopyToAsync(copy);
        Assert.Equal(first, copy.ToArray());
        Assert.Equal(Sha256(first), open.File.Sha256);
    }

    [Theory]
    [InlineData(".")]
    [InlineData("..")]
    public async Task Dot_user_ids_stay_inside_the_root_and_apart(string user)
    {
        await SaveAsync(user, "x", Bytes(10, seed: 7));
        await SaveAsync("alice", "x", Bytes(10, seed: 8));

        Assert.Equal(Bytes(10, seed: 7), await ReadAllAsync(user, "x"));
        Assert.All(_root.AllFiles(), path => Assert.StartsWith(Path.Combine(_root.Path, "users") + Path.DirectorySeparatorChar, path));
        Assert.Equal(2, Directory.EnumerateDirectories(Path.Combine(_root.Path, "users")).Count());
    }

    [Fact]
    public async Task Opening_the_store_sweeps_temp_files_and_orphaned_blobs_but_keeps_live_files()
    {
        var bytes = Bytes(100);
        await SaveAsync("alice", "keep.bin", bytes);
        await SaveAsync("alice", "stale-record.bin", Bytes(10));
        var userDirectory = Directory.EnumerateDirectories(Path.Combine(_root.Path, "users")).Single();
        var blobs = Path.Combine(userDirectory, "blobs");
        var staleBlob = Directory.EnumerateFiles(blobs).Single(path => new FileInfo(path).Length == 10);
        // What a crash can leave behind: a half-written upload, a blob renamed into place before its
        // record switched, and (from outside damage) a record whose blob is gone.
        await System.IO.File.WriteAllTextAsync(Path.Combine(TempFolder, "crashed.upload"), "partial");
        var orphanBlob = Directory.EnumerateFiles(blobs).First() + "-orphan";
        await System.IO.File.WriteAllTextAsync(orphanBlob, "orphan");
        System.IO.File.Delete(staleBlob);

        var reopened = new FileSystemFileStore(_root.Path).Opened();

        Assert.Empty(Directory.EnumerateFiles(TempFolder));
        Assert.False(System.IO.File.Exists(orphanBlob));
        using var content = await reopened.OpenReadAsync(User("alice"), File("keep.bin"), CancellationToken.None);
        Assert.NotNull(content);
        Assert.Equal(bytes.Length, content.Content.Length);
        Assert.Null(await reopened.OpenReadAsync(User("alice"), File("stale-record.bin"), CancellationToken.None));
        var listing = await reopened.ListAsync(User("alice"), "", 10, null, CancellationToken.None);
        Assert.Equal(["keep.bin"], listing.Files.Select(f => f.Name));
    }

    [Fact]
    public async Task Opening_the_store_removes_tus_bytes_whose_upload_has_no_state_and_keeps_live_uploads()
    {
        var store = new FileSystemFileStore(_root.Path).Opened();
        var now = DateTimeOffset.UtcNow;
        var live = await store.CreateUploadAsync(User("alice"), TusUploads.NewInfo(10, "live.bin", now), CancellationToken.None);
        await live.AppendAsync(new MemoryStream(Bytes(4)), new TusRunningHashes());
        var lost = await store.CreateUploadAsync(User("alice"), TusUploads.NewInfo(10, "lost.bin", now), CancellationToken.None);
        // A crash between creating an upload's bytes file and its state (or between removing them).
        var lostState = Directory.EnumerateFiles(Path.Combine(_root.Path, "uploads"), lost.Info.Id + ".json", SearchOption.AllDirectories).Single();
        System.IO.File.Delete(lostState);

        var reopened = new FileSystemFileStore(_root.Path).Opened();

        var remaining = Directory.EnumerateFiles(Path.Combine(_root.Path, "uploads"), "*.bin", SearchOption.AllDirectories).ToList();
        Assert.Equal([live.Info.Id + ".bin"], remaining.Select(Path.GetFileName));
        Assert.Equal(4, (await reopened.GetUploadAsync(User("alice"), UploadId.Stored(live.Info.Id), CancellationToken.None))!.Info.Offset);
        Assert.Null(await reopened.GetUploadAsync(User("alice"), UploadId.Stored(lost.Info.Id), CancellationToken.None));
    }
}
