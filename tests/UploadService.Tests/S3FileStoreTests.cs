using UploadService.Storage;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

/// <summary>
/// The shared store suite on the s3 backend against a local S3-compatible server, plus multipart uploads
/// (5 MiB parts, the smallest S3 and R2 accept) and a brand-new store over the same bucket.
/// </summary>
[Collection(S3ServerCollection.Name)]
public sealed class S3FileStoreTests(S3Server server) : FileStoreContractTests
{
    private const int PartSize = (int)S3StoreOptions.MinPartSizeBytes;

    private string _bucket = "";
    private S3FileStore? _store;

    protected override IFileStore Store => _store!;

    public override async Task InitializeAsync()
    {
        _bucket = await server.CreateBucketAsync();
        _store = new S3FileStore(server.Options(_bucket)).Opened();
    }

    public override Task DisposeAsync()
    {
        _store?.Dispose();
        return Task.CompletedTask;
    }

    protected override Task<IReadOnlyList<string>> StoredEntriesAsync() => server.KeysAsync(_bucket);

    protected override int StagedCount() => (int)_store!.PartsInMemory;

    protected override int EntriesFor(int size) => size <= S3FileStore.SmallFileBytes ? 1 : 2;

    [Fact]
    public async Task A_file_of_several_parts_round_trips_and_serves_ranges_across_part_boundaries()
    {
        var bytes = Bytes(2 * PartSize + 123_457); // two full parts and a short last one

        var saved = await SaveAsync("alice", "big.bin", bytes);

        Assert.Equal(Sha256(bytes), saved.Sha256);
        Assert.Equal(bytes, await ReadAllAsync("alice", "big.bin"));
        using var content = await Store.OpenReadAsync(User("alice"), File("big.bin"), CancellationToken.None);
        var across = new byte[1000];
        content!.Content.Seek(PartSize - 500, SeekOrigin.Begin);
        await content.Content.ReadExactlyAsync(across);
        Assert.Equal(bytes.AsSpan(PartSize - 500, 1000).ToArray(), across);
        Assert.Equal(0, StagedCount());
        Assert.Equal(0, _store!.PartBytesCopiedWhole); // the SDK sent the parts' pooled blocks as they are
        Assert.Equal(2, (await StoredEntriesAsync()).Count);
    }

    [Fact]
    public async Task A_multipart_save_that_fails_after_a_part_was_uploaded_leaves_nothing()
    {
        var original = Bytes(500, seed: 3);
        await SaveAsync("alice", "big.bin", original);
        var source = new ScriptedStream(PartSize + 100_000, () => throw new IOException("connection reset"));

        await Assert.ThrowsAsync<UploadContentException>(() =>
            Store.SaveAsync(User("alice"), File("big.bin"), source, Binary, NoLimit, CancellationToken.None));

        Assert.Equal(original, await ReadAllAsync("alice", "big.bin"));
        Assert.Equal(EntriesFor(original.Length), (await StoredEntriesAsync()).Count);
        Assert.Equal(0, StagedCount());
    }

    [Fact]
    public async Task A_new_store_with_an_empty_disk_lists_and_serves_every_file()
    {
        var bytes = Bytes(PartSize + 1);
        await SaveAsync("alice", "docs/a.bin", bytes, "application/pdf");
        await SaveAsync("alice", "docs/b.txt", Bytes(3), "text/plain");

        using var fresh = new S3FileStore(server.Options(_bucket)).Opened();

        var listing = await fresh.ListAsync(User("alice"), "docs/", 10, null, CancellationToken.None);
        Assert.Equal(["docs/a.bin", "docs/b.txt"], listing.Files.Select(f => f.Name));
        Assert.Equal("application/pdf", listing.Files[0].ContentType);
        using var content = await fresh.OpenReadAsync(User("alice"), File("docs/a.bin"), CancellationToken.None);
        var copy = new MemoryStream();
        await content!.Content.CopyToAsync(copy);
        Assert.Equal(bytes, copy.ToArray());
    }

    [Fact]
    public async Task A_new_store_replaces_and_deletes_what_an_earlier_one_saved_without_leaving_its_blob()
    {
        // Which names have a record is listed by each store once: a wrong list would leave replaced blobs behind.
        // Over the small-file size: each version is a blob.
        const int Size = S3FileStore.SmallFileBytes + 100;
        await SaveAsync("alice", "kept/a.bin", Bytes(Size, seed: 1));
        await SaveAsync("alice", "gone.bin", Bytes(Size, seed: 2));

        using var fresh = new S3FileStore(server.Options(_bucket)).Opened();
        var replaced = Bytes(Size + 200, seed: 3);
        await fresh.SaveAsync(User("alice"), File("kept/a.bin"), new MemoryStream(replaced), Binary, NoLimit, CancellationToken.None);
        Assert.True(await fresh.DeleteAsync(User("alice"), File("gone.bin"), CancellationToken.None));
        await fresh.SaveAsync(User("alice"), File("gone.bin"), new MemoryStream(Bytes(Size + 5, seed: 4)), Binary, NoLimit, CancellationToken.None);
        await fresh.SaveAsync(User("alice"), File("gone.bin"), new MemoryStream(Bytes(Size + 6, seed: 5)), Binary, NoLimit, CancellationToken.None);

        Assert.Equal(4, (await StoredEntriesAsync()).Count); // two records and their current blobs
        Assert.Equal(replaced, await ReadAllAsync("alice", "kept/a.bin"));
        Assert.Equal(Size + 200 + Size + 6, await fresh.GetUsageAsync(User("alice"), CancellationToken.None));
    }

    [Fact]
    public async Task A_small_file_lives_in_its_record_and_replacing_it_either_way_leaves_no_blob_behind()
    {
        var small = Bytes(S3FileStore.SmallFileBytes, seed: 1);
        var large = Bytes(S3FileStore.SmallFileBytes + 1, seed: 2);

        await SaveAsync("alice", "a.bin", small);
        Assert.Single(await StoredEntriesAsync()); // the record holds the bytes
        Assert.Equal(small, await ReadAllAsync("alice", "a.bin"));
        using (var content = await Store.OpenReadAsync(User("alice"), File("a.bin"), CancellationToken.None))
        {
            content!.Content.Seek(100, SeekOrigin.Begin);
            var part = new byte[50];
            await content.Content.ReadExactlyAsync(part);
            Assert.Equal(small.AsSpan(100, 50).ToArray(), part);
        }

        await SaveAsync("alice", "a.bin", large);
        Assert.Equal(2, (await StoredEntriesAsync()).Count);
        Assert.Equal(large, await ReadAllAsync("alice", "a.bin"));

        await SaveAsync("alice", "a.bin", small);
        Assert.Single(await StoredEntriesAsync()); // the large version's blob went with the switch
        Assert.Equal(small, await ReadAllAsync("alice", "a.bin"));
        Assert.Equal(small.Length, await Store.GetUsageAsync(User("alice"), CancellationToken.None));
        var listed = Assert.Single((await Store.ListAsync(User("alice"), "", 10, null, CancellationToken.None)).Files);
        Assert.Equal((small.Length, Sha256(small)), (listed.Size, listed.Sha256));

        Assert.True(await Store.DeleteAsync(User("alice"), File("a.bin"), CancellationToken.None));
        Assert.Empty(await StoredEntriesAsync());
    }
}
