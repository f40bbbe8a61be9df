using UploadService.Storage;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

public sealed class FileSystemFileStoreTests : IDisposable
{
    private const long NoLimit = long.MaxValue;
    private const string Binary = "application/octet-stream";

    private readonly TempDirectory _root = new();
    private readonly FileSystemFileStore _store;

    public FileSystemFileStoreTests() => _store = new FileSystemFileStore(_root.Path);

    public void Dispose() => _root.Dispose();

    private string TempFolder => Path.Combine(_root.Path, "tmp");

    private Task<StoredFile> SaveAsync(string user, string name, byte[] bytes, string contentType = Binary) =>
        _store.SaveAsync(User(user), File(name), new MemoryStream(bytes), contentType, NoLimit, CancellationToken.None);

    private async Task<byte[]?> ReadAllAsync(string user, string name)
    {
        using var content = await _store.OpenReadAsync(User(user), File(name), CancellationToken.None);
        if (content is null)
        {
            return null;
        }

        var copy = new MemoryStream();
        await content.Content.CopyToAsync(copy);
        return copy.ToArray();
    }

    [Fact]
    public async Task Save_then_open_round_trips_bytes_size_sha256_and_content_type()
    {
        var bytes = Bytes(300_000); // several copy chunks

        var saved = await SaveAsync("alice", "docs/report.bin", bytes, "application/pdf");

        Assert.Equal("docs/report.bin", saved.Name);
        Assert.Equal(bytes.Length, saved.Size);
        Assert.Equal(Sha256(bytes), saved.Sha256);
        Assert.Equal("application/pdf", saved.ContentType);
        using var content = await _store.OpenReadAsync(User("alice"), File("docs/report.bin"), CancellationToken.None);
        Assert.NotNull(content);
        Assert.Equal(saved, content.File);
        Assert.True(content.Content.CanSeek);
        Assert.Equal(bytes, await ReadAllAsync("alice", "docs/report.bin"));
        Assert.Empty(Directory.EnumerateFiles(TempFolder));
    }

    [Fact]
    public async Task Empty_file_is_stored_with_the_sha256_of_nothing()
    {
        var saved = await SaveAsync("alice", "empty", []);

        Assert.Equal(0, saved.Size);
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", saved.Sha256);
        Assert.Equal(Array.Empty<byte>(), await ReadAllAsync("alice", "empty"));
    }

    [Fact]
    public async Task No_client_string_appears_in_any_path_on_disk()
    {
        await SaveAsync("alice", "secret-folder/visible-name.txt", Bytes(10));

        foreach (var path in _root.AllFiles())
        {
            Assert.DoesNotContain("alice", path);
            Assert.DoesNotContain("secret-folder", path);
            Assert.DoesNotContain("visible-name", path);
        }
    }

    [Fact]
    public async Task Save_replaces_the_existing_file_and_removes_the_old_version()
    {
        await SaveAsync("alice", "a.txt", Bytes(1000, seed: 1), "text/plain");
        var second = Bytes(2000, seed: 2);

        var saved = await SaveAsync("alice", "a.txt", second, "text/csv");

        Assert.Equal(Sha256(second), saved.Sha256);
        Assert.Equal(second, await ReadAllAsync("alice", "a.txt"));
        var listing = await _store.ListAsync(User("alice"), "", 10, null, CancellationToken.None);
        Assert.Equal("text/csv", Assert.Single(listing.Files).ContentType);
        // one record and one blob: the first version's bytes are gone
        Assert.Equal(2, _root.AllFiles().Count());
    }

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

    [Fact]
    public async Task Delete_removes_the_file_and_reports_unknown_names()
    {
        await SaveAsync("alice", "a.txt", Bytes(10));

        Assert.True(await _store.DeleteAsync(User("alice"), File("a.txt"), CancellationToken.None));
        Assert.False(await _store.DeleteAsync(User("alice"), File("a.txt"), CancellationToken.None));
        Assert.Null(await ReadAllAsync("alice", "a.txt"));
        Assert.Empty(_root.AllFiles());
    }

    [Fact]
    public async Task Open_of_an_unknown_name_or_user_returns_null()
    {
        Assert.Null(await ReadAllAsync("nobody", "a.txt"));
        await SaveAsync("alice", "a.txt", Bytes(10));
        Assert.Null(await ReadAllAsync("alice", "b.txt"));
    }

    [Fact]
    public async Task List_filters_by_prefix_sorts_by_name_and_pages_with_start_after()
    {
        string[] names = ["b/2", "a", "b/1", "c", "b/3", "ba", "B"];
        foreach (var name in names)
        {
            await SaveAsync("alice", name, Bytes(5));
        }

        var all = await _store.ListAsync(User("alice"), "", 100, null, CancellationToken.None);
        Assert.Equal(["B", "a", "b/1", "b/2", "b/3", "ba", "c"], all.Files.Select(f => f.Name));
        Assert.Null(all.NextStartAfter);

        var prefixed = await _store.ListAsync(User("alice"), "b/", 100, null, CancellationToken.None);
        Assert.Equal(["b/1", "b/2", "b/3"], prefixed.Files.Select(f => f.Name));

        var seen = new List<string>();
        string? startAfter = null;
        var pages = 0;
        do
        {
            var page = await _store.ListAsync(User("alice"), "b", 2, startAfter, CancellationToken.None);
            Assert.InRange(page.Files.Count, 1, 2);
            seen.AddRange(page.Files.Select(f => f.Name));
            startAfter = page.NextStartAfter;
            pages++;
        }
        while (startAfter is not null);

        Assert.Equal(["b/1", "b/2", "b/3", "ba"], seen);
        Assert.Equal(2, pages);
    }

    [Fact]
    public async Task List_of_a_user_with_no_files_is_empty()
    {
        var listing = await _store.ListAsync(User("nobody"), "", 10, null, CancellationToken.None);
        Assert.Empty(listing.Files);
        Assert.Null(listing.NextStartAfter);
    }

    [Fact]
    public async Task Users_cannot_see_or_touch_each_others_files()
    {
        await SaveAsync("alice", "shared-name.txt", Bytes(10, seed: 1));
        await SaveAsync("bob", "shared-name.txt", Bytes(20, seed: 2));

        Assert.Equal(Bytes(10, seed: 1), await ReadAllAsync("alice", "shared-name.txt"));
        Assert.Equal(Bytes(20, seed: 2), await ReadAllAsync("bob", "shared-name.txt"));
        Assert.Null(await ReadAllAsync("carol", "shared-name.txt"));
        Assert.Empty((await _store.ListAsync(User("carol"), "", 10, null, CancellationToken.None)).Files);

        Assert.True(await _store.DeleteAsync(User("bob"), File("shared-name.txt"), CancellationToken.None));
        Assert.Equal(Bytes(10, seed: 1), await ReadAllAsync("alice", "shared-name.txt"));
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
    public async Task A_save_whose_source_throws_midway_leaves_nothing_and_the_old_version_intact()
    {
        var original = Bytes(500, seed: 3);
        await SaveAsync("alice", "a.bin", original);
        var tempFilesWhileWriting = -1;
        var source = new ScriptedStream(250_000, () =>
        {
            tempFilesWhileWriting = Directory.EnumerateFiles(TempFolder).Count();
            throw new IOException("connection reset");
        });

        var error = await Assert.ThrowsAsync<UploadContentException>(() =>
            _store.SaveAsync(User("alice"), File("a.bin"), source, Binary, NoLimit, CancellationToken.None));

        Assert.IsType<IOException>(error.InnerException);
        Assert.Equal(1, tempFilesWhileWriting); // the test can see a partial file while one exists
        Assert.Empty(Directory.EnumerateFiles(TempFolder));
        Assert.Equal(original, await ReadAllAsync("alice", "a.bin"));
        Assert.Equal(2, _root.AllFiles().Count());
    }

    [Fact]
    public async Task A_cancelled_save_leaves_no_file_and_no_temp_file()
    {
        using var aborted = new CancellationTokenSource();
        var tempFilesWhileWriting = -1;
        var source = new ScriptedStream(250_000, () =>
        {
            tempFilesWhileWriting = Directory.EnumerateFiles(TempFolder).Count();
            aborted.Cancel();
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            _store.SaveAsync(User("alice"), File("new.bin"), source, Binary, NoLimit, aborted.Token));

        Assert.Equal(1, tempFilesWhileWriting);
        Assert.Null(await ReadAllAsync("alice", "new.bin"));
        Assert.Empty((await _store.ListAsync(User("alice"), "", 10, null, CancellationToken.None)).Files);
        Assert.Empty(_root.AllFiles());
    }

    [Fact]
    public async Task A_save_over_the_limit_fails_and_keeps_nothing()
    {
        var error = await Assert.ThrowsAsync<FileTooLargeException>(() =>
            _store.SaveAsync(User("alice"), File("big.bin"), new MemoryStream(Bytes(1001)), Binary, 1000, CancellationToken.None));

        Assert.Equal(1000, error.MaxBytes);
        Assert.Empty(_root.AllFiles());
        var exactly = await _store.SaveAsync(User("alice"), File("ok.bin"), new MemoryStream(Bytes(1000)), Binary, 1000, CancellationToken.None);
        Assert.Equal(1000, exactly.Size);
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

        var reopened = new FileSystemFileStore(_root.Path);

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
    public async Task Concurrent_saves_of_one_name_leave_exactly_one_complete_version()
    {
        var versions = Enumerable.Range(1, 8).Select(seed => Bytes(100_000, seed)).ToArray();

        await Task.WhenAll(versions.Select(bytes => Task.Run(() => SaveAsync("alice", "race.bin", bytes))));

        var stored = await ReadAllAsync("alice", "race.bin");
        Assert.Contains(versions, v => v.AsSpan().SequenceEqual(stored));
        var listing = await _store.ListAsync(User("alice"), "", 10, null, CancellationToken.None);
        Assert.Equal(Sha256(stored!), Assert.Single(listing.Files).Sha256);
        Assert.Equal(2, _root.AllFiles().Count());
    }
}
