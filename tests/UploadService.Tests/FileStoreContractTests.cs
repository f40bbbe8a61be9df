using UploadService.Storage;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

/// <summary>
/// The behaviour every <see cref="IFileStore"/> backend promises, run once per backend by a derived class
/// (<see cref="FileSystemFileStoreTests"/>, <see cref="S3FileStoreTests"/>). Backend-specific checks
/// (crash recovery on disk, multipart part sizes) live in those classes.
/// </summary>
public abstract class FileStoreContractTests : IAsyncLifetime
{
    protected const long NoLimit = long.MaxValue;
    protected const string Binary = "application/octet-stream";

    protected abstract IFileStore Store { get; }

    /// <summary>Every stored entry (file path or object key): what a save or delete leaves behind.</summary>
    protected abstract Task<IReadOnlyList<string>> StoredEntriesAsync();

    /// <summary>The entries a file of <paramref name="size"/> bytes leaves: its record and its blob, or its record alone where the backend keeps small files in it.</summary>
    protected virtual int EntriesFor(int size) => 2;

    /// <summary>How many writes are staged right now: temp files on disk, parts in memory.</summary>
    protected abstract int StagedCount();

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual Task DisposeAsync() => Task.CompletedTask;

    protected Task<StoredFile> SaveAsync(string user, string name, byte[] bytes, string contentType = Binary) =>
        Store.SaveAsync(User(user), File(name), new MemoryStream(bytes), contentType, NoLimit, CancellationToken.None);

    protected async Task<byte[]?> ReadAllAsync(string user, string name)
    {
        using var content = await Store.OpenReadAsync(User(user), File(name), CancellationToken.None);
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
        using var content = await Store.OpenReadAsync(User("alice"), File("docs/report.bin"), CancellationToken.None);
        Assert.NotNull(content);
        Assert.Equal(saved, content.File);
        Assert.True(content.Content.CanSeek);
        Assert.Equal(bytes.Length, content.Content.Length);
        Assert.Equal(bytes, await ReadAllAsync("alice", "docs/report.bin"));
        Assert.Equal(0, StagedCount());
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
    public async Task Seeking_reads_any_range_of_the_file()
    {
        var bytes = Bytes(300_000);
        await SaveAsync("alice", "ranged.bin", bytes);
        using var content = await Store.OpenReadAsync(User("alice"), File("ranged.bin"), CancellationToken.None);

        foreach (var (start, length) in new[] { (250_000, 50_000), (0, 10), (123_456, 1), (299_999, 1) })
        {
            content!.Content.Seek(start, SeekOrigin.Begin);
            var buffer = new byte[length];
            await content.Content.ReadExactlyAsync(buffer);
            Assert.Equal(bytes.AsSpan(start, length).ToArray(), buffer);
        }

        Assert.Equal(0, await content!.Content.ReadAsync(new byte[1]));
    }

    [Fact]
    public async Task No_client_string_appears_in_any_stored_path_or_key()
    {
        await SaveAsync("alice", "secret-folder/visible-name.txt", Bytes(10));

        foreach (var entry in await StoredEntriesAsync())
        {
            Assert.DoesNotContain("alice", entry);
            Assert.DoesNotContain("secret-folder", entry);
            Assert.DoesNotContain("visible-name", entry);
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
        var listing = await Store.ListAsync(User("alice"), "", 10, null, CancellationToken.None);
        Assert.Equal("text/csv", Assert.Single(listing.Files).ContentType);
        // one record and (where it is not in the record) one blob: the first version's bytes are gone
        Assert.Equal(EntriesFor(second.Length), (await StoredEntriesAsync()).Count);
    }

    [Fact]
    public async Task Delete_removes_the_file_and_reports_unknown_names()
    {
        await SaveAsync("alice", "a.txt", Bytes(10));

        Assert.True(await Store.DeleteAsync(User("alice"), File("a.txt"), CancellationToken.None));
        Assert.False(await Store.DeleteAsync(User("alice"), File("a.txt"), CancellationToken.None));
        Assert.Null(await ReadAllAsync("alice", "a.txt"));
        Assert.Empty(await StoredEntriesAsync());
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

        var all = await Store.ListAsync(User("alice"), "", 100, null, CancellationToken.None);
        Assert.Equal(["B", "a", "b/1", "b/2", "b/3", "ba", "c"], all.Files.Select(f => f.Name));
        Assert.Null(all.NextStartAfter);

        var prefixed = await Store.ListAsync(User("alice"), "b/", 100, null, CancellationToken.None);
        Assert.Equal(["b/1", "b/2", "b/3"], prefixed.Files.Select(f => f.Name));

        var seen = new List<string>();
        string? startAfter = null;
        var pages = 0;
        do
        {
            var page = await Store.ListAsync(User("alice"), "b", 2, startAfter, CancellationToken.None);
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
        var listing = await Store.ListAsync(User("nobody"), "", 10, null, CancellationToken.None);
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
        Assert.Empty((await Store.ListAsync(User("carol"), "", 10, null, CancellationToken.None)).Files);

        Assert.True(await Store.DeleteAsync(User("bob"), File("shared-name.txt"), CancellationToken.None));
        Assert.Equal(Bytes(10, seed: 1), await ReadAllAsync("alice", "shared-name.txt"));
    }

    [Theory]
    [InlineData(".")]
    [InlineData("..")]
    public async Task Dot_user_ids_are_users_like_any_other(string user)
    {
        await SaveAsync(user, "x", Bytes(10, seed: 7));
        await SaveAsync("alice", "x", Bytes(10, seed: 8));

        Assert.Equal(Bytes(10, seed: 7), await ReadAllAsync(user, "x"));
        Assert.Equal(Bytes(10, seed: 8), await ReadAllAsync("alice", "x"));
        Assert.Equal(2 * EntriesFor(10), (await StoredEntriesAsync()).Count);
    }

    /// <summary>More than two of the copy's buffers, so that some bytes are written before the source fails.</summary>
    private const int MidwayBytes = 2 * HashingCopy.BufferSize + 50_000;

    [Fact]
    public async Task A_save_whose_source_throws_midway_leaves_nothing_and_the_old_version_intact()
    {
        var original = Bytes(500, seed: 3);
        await SaveAsync("alice", "a.bin", original);
        var stagedWhileWriting = -1;
        var source = new ScriptedStream(MidwayBytes, () =>
        {
            stagedWhileWriting = StagedCount();
            throw new IOException("connection reset");
        });

        var error = await Assert.ThrowsAsync<UploadContentException>(() =>
            Store.SaveAsync(User("alice"), File("a.bin"), source, Binary, NoLimit, CancellationToken.None));

        Assert.IsType<IOException>(error.InnerException);
        Assert.Equal(1, stagedWhileWriting); // the test can see a staged write while one exists
        Assert.Equal(0, StagedCount());
        Assert.Equal(original, await ReadAllAsync("alice", "a.bin"));
        Assert.Equal(EntriesFor(original.Length), (await StoredEntriesAsync()).Count);
    }

    [Fact]
    public async Task A_cancelled_save_leaves_no_file_and_no_temp_file()
    {
        using var aborted = new CancellationTokenSource();
        var stagedWhileWriting = -1;
        var source = new ScriptedStream(MidwayBytes, () =>
        {
            stagedWhileWriting = StagedCount();
            aborted.Cancel();
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            Store.SaveAsync(User("alice"), File("new.bin"), source, Binary, NoLimit, aborted.Token));

        Assert.Equal(1, stagedWhileWriting);
        Assert.Null(await ReadAllAsync("alice", "new.bin"));
        Assert.Empty((await Store.ListAsync(User("alice"), "", 10, null, CancellationToken.None)).Files);
        Assert.Empty(await StoredEntriesAsync());
        Assert.Equal(0, StagedCount());
    }

    [Fact]
    public async Task A_save_over_the_limit_fails_and_keeps_nothing()
    {
        var error = await Assert.ThrowsAsync<FileTooLargeException>(() =>
            Store.SaveAsync(User("alice"), File("big.bin"), new MemoryStream(Bytes(1001)), Binary, 1000, CancellationToken.None));

        Assert.Equal(1000, error.MaxBytes);
        Assert.Empty(await StoredEntriesAsync());
        var exactly = await Store.SaveAsync(User("alice"), File("ok.bin"), new MemoryStream(Bytes(1000)), Binary, 1000, CancellationToken.None);
        Assert.Equal(1000, exactly.Size);
    }

    [Fact]
    public async Task Concurrent_saves_of_one_name_leave_exactly_one_complete_version()
    {
        var versions = Enumerable.Range(1, 8).Select(seed => Bytes(100_000, seed)).ToArray();

        await Task.WhenAll(versions.Select(bytes => Task.Run(() => SaveAsync("alice", "race.bin", bytes))));

        var stored = await ReadAllAsync("alice", "race.bin");
        Assert.Contains(versions, v => v.AsSpan().SequenceEqual(stored));
        var listing = await Store.ListAsync(User("alice"), "", 10, null, CancellationToken.None);
        Assert.Equal(Sha256(stored!), Assert.Single(listing.Files).Sha256);
        Assert.Equal(EntriesFor(stored!.Length), (await StoredEntriesAsync()).Count);
    }
    private Task<long> UsageAsync(string user) => Store.GetUsageAsync(User(user), CancellationToken.None);

    [Fact]
    public async Task Usage_counts_the_current_version_of_each_file_of_that_user_only()
    {
        Assert.Equal(0, await UsageAsync("alice"));
        await SaveAsync("alice", "a.bin", Bytes(1000));
        await SaveAsync("alice", "b/c.bin", Bytes(300));
        await SaveAsync("bob", "a.bin", Bytes(7));
        Assert.Equal(1300, await UsageAsync("alice"));

        await SaveAsync("alice", "a.bin", Bytes(50)); // replaced: the old version no longer counts
        Assert.True(await Store.DeleteAsync(User("alice"), File("b/c.bin"), CancellationToken.None));

        Assert.Equal(50, await UsageAsync("alice"));
        Assert.Equal(7, await UsageAsync("bob"));
    }

    [Fact]
    public async Task A_save_stopped_by_the_quota_fails_with_that_reason_and_keeps_nothing()
    {
        await Assert.ThrowsAsync<QuotaExceededException>(() => Store.SaveAsync(
            User("alice"), File("q.bin"), new ScriptedStream(300_000, () => throw new QuotaExceededException(10)),
            Binary, NoLimit, CancellationToken.None));

        Assert.Empty(await StoredEntriesAsync());
        Assert.Equal(0, StagedCount());
        Assert.Equal(0, await UsageAsync("alice"));
    }
}
