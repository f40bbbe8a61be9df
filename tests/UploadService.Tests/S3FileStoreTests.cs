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

    private readonly TempDirectory _scratch = new();
    private string _bucket = "";
    private S3FileStore? _store;

    protected override IFileStore Store => _store!;

    public override async Task InitializeAsync()
    {
        _bucket = await server.CreateBucketAsync();
        _store = new S3FileStore(server.Options(_bucket, _scratch.Path)).Opened();
    }

    public override Task DisposeAsync()
    {
        _store?.Dispose();
        _scratch.Dispose();
        return Task.CompletedTask;
    }

    protected override Task<IReadOnlyList<string>> StoredEntriesAsync() => server.KeysAsync(_bucket);

    protected override int ScratchFileCount() => Directory.EnumerateFiles(_scratch.Path).Count();

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
        Assert.Equal(0, ScratchFileCount());
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
        Assert.Equal(2, (await StoredEntriesAsync()).Count);
        Assert.Equal(0, ScratchFileCount());
    }

    [Fact]
    public async Task A_new_store_with_an_empty_disk_lists_and_serves_every_file()
    {
        var bytes = Bytes(PartSize + 1);
        await SaveAsync("alice", "docs/a.bin", bytes, "application/pdf");
        await SaveAsync("alice", "docs/b.txt", Bytes(3), "text/plain");

        using var emptyDisk = new TempDirectory();
        using var fresh = new S3FileStore(server.Options(_bucket, emptyDisk.Path)).Opened();

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
        await SaveAsync("alice", "kept/a.bin", Bytes(100, seed: 1));
        await SaveAsync("alice", "gone.bin", Bytes(100, seed: 2));

        using var emptyDisk = new TempDirectory();
        using var fresh = new S3FileStore(server.Options(_bucket, emptyDisk.Path)).Opened();
        var replaced = Bytes(200, seed: 3);
        await fresh.SaveAsync(User("alice"), File("kept/a.bin"), new MemoryStream(replaced), Binary, NoLimit, CancellationToken.None);
        Assert.True(await fresh.DeleteAsync(User("alice"), File("gone.bin"), CancellationToken.None));
        await fresh.SaveAsync(User("alice"), File("gone.bin"), new MemoryStream(Bytes(5, seed: 4)), Binary, NoLimit, CancellationToken.None);
        await fresh.SaveAsync(User("alice"), File("gone.bin"), new MemoryStream(Bytes(6, seed: 5)), Binary, NoLimit, CancellationToken.None);

        Assert.Equal(4, (await StoredEntriesAsync()).Count); // two records and their current blobs
        Assert.Equal(replaced, await ReadAllAsync("alice", "kept/a.bin"));
        Assert.Equal(200 + 6, await fresh.GetUsageAsync(User("alice"), CancellationToken.None));
    }
}
