using System.Security.Cryptography;
using UploadService.Storage;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

/// <summary>
/// What every <see cref="IUploadStore"/> backend promises for resumable (tus) uploads, run once per backend:
/// chunks of any size (across the s3 backend's 5 MiB parts), resuming from a brand-new store instance (for
/// s3: an empty local disk), broken connections, checksums, concatenation, termination and expiry.
/// </summary>
public abstract class UploadStoreContractTests : IAsyncLifetime
{
    protected const int PartSize = (int)S3StoreOptions.MinPartSizeBytes;
    private static readonly DateTimeOffset Now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The store under test; a new instance over the same storage after <see cref="ReopenAsync"/>.</summary>
    protected abstract IUploadStore Uploads { get; }

    protected IFileStore Files => (IFileStore)Uploads;

    /// <summary>Replaces the store with a new instance over the same durable storage (a restarted, or fresh, container).</summary>
    protected abstract Task ReopenAsync();

    /// <summary>Every stored entry (file path or object key).</summary>
    protected abstract Task<IReadOnlyList<string>> StoredEntriesAsync();

    public abstract Task InitializeAsync();

    public abstract Task DisposeAsync();

    private static UploadRecord NewUpload(long? length, bool partial = false) =>
        new(Guid.NewGuid().ToString("N"), length, 0, null, partial, null, Now, Now.AddHours(1));

    private Task<UploadRecord> AppendAsync(UploadRecord upload, byte[] chunk, ChunkChecksum? checksum = null) =>
        Uploads.AppendAsync(User("alice"), upload, new MemoryStream(chunk), long.MaxValue, checksum, Now.AddHours(2), CancellationToken.None);

    /// <summary>
    /// What a finished upload reads as afterwards: complete; and completing it again (what HEAD and PATCH do
    /// for an upload that reads complete without a file name) names the file and changes nothing in it.
    /// </summary>
    private async Task AssertBecameFileAsync(string id, string name, string contentType, byte[] bytes)
    {
        var upload = await Uploads.GetUploadAsync(User("alice"), id, CancellationToken.None);
        Assert.NotNull(upload);
        Assert.True(upload.IsComplete);
        if (upload.FileName is null)
        {
            (upload, var file) = await Uploads.CompleteUploadAsync(User("alice"), upload, File(name), "text/x-again", CancellationToken.None);
            Assert.Equal(contentType, file!.ContentType);
            Assert.Equal(Sha256(bytes), file.Sha256);
        }

        Assert.Equal(name, upload.FileName);
        Assert.Equal(bytes, await FileBytesAsync(name));
        var listed = await Files.ListAsync(User("alice"), name, 10, null, CancellationToken.None);
        Assert.Equal(contentType, Assert.Single(listed.Files, f => f.Name == name).ContentType);
    }

    private async Task<byte[]?> FileBytesAsync(string name)
    {
        using var content = await Files.OpenReadAsync(User("alice"), File(name), CancellationToken.None);
        if (content is null)
        {
            return null;
        }

        var copy = new MemoryStream();
        await content.Content.CopyToAsync(copy);
        return copy.ToArray();
    }

    [Fact]
    public async Task Chunks_of_any_size_resume_on_a_new_store_and_complete_into_the_file()
    {
        var bytes = Bytes(2 * PartSize + 1234);
        var upload = await Uploads.CreateUploadAsync(User("alice"), NewUpload(bytes.Length), CancellationToken.None);
        upload = await AppendAsync(upload, bytes[..3_000_000]);
        upload = await AppendAsync(upload, bytes[3_000_000..6_500_000]); // crosses the first part boundary

        await ReopenAsync();

        var resumed = await Uploads.GetUploadAsync(User("alice"), upload.Id, CancellationToken.None);
        Assert.NotNull(resumed);
        Assert.Equal(6_500_000, resumed.Offset);
        Assert.Equal(Now.AddHours(2), resumed.ExpiresAt);
        resumed = await AppendAsync(resumed, bytes[6_500_000..]);
        Assert.True(resumed.IsComplete);

        var (completed, file) = await Uploads.CompleteUploadAsync(User("alice"), resumed, File("videos/v.mp4"), "video/mp4", CancellationToken.None);

        Assert.Equal("videos/v.mp4", completed.FileName);
        Assert.Equal(new StoredFile("videos/v.mp4", bytes.Length, Sha256(bytes), "video/mp4", file!.CreatedAt), file);
        Assert.Equal(bytes, await FileBytesAsync("videos/v.mp4"));
        await AssertBecameFileAsync(upload.Id, "videos/v.mp4", "video/mp4", bytes);
    }

    [Fact]
    public async Task A_broken_connection_keeps_the_bytes_that_arrived()
    {
        var bytes = Bytes(PartSize + 300_000);
        var upload = await Uploads.CreateUploadAsync(User("alice"), NewUpload(bytes.Length), CancellationToken.None);
        var breaking = new BreakingStream(bytes, breakAfter: PartSize + 100_000);

        await Assert.ThrowsAsync<UploadContentException>(() => Uploads.AppendAsync(
            User("alice"), upload, breaking, long.MaxValue, null, Now.AddHours(2), CancellationToken.None));

        await ReopenAsync();
        var resumed = await Uploads.GetUploadAsync(User("alice"), upload.Id, CancellationToken.None);
        Assert.Equal(PartSize + 100_000, resumed!.Offset);
        resumed = await AppendAsync(resumed, bytes[(int)resumed.Offset..]);
        await Uploads.CompleteUploadAsync(User("alice"), resumed, File("b.bin"), "application/octet-stream", CancellationToken.None);
        Assert.Equal(bytes, await FileBytesAsync("b.bin"));
    }

    [Fact]
    public async Task The_sha256_covers_exactly_the_kept_bytes_after_discarded_and_broken_chunks()
    {
        // The store may hash chunks as they arrive; a discarded chunk and the part of a broken one that
        // was dropped must not count, and one that was kept must.
        var bytes = Bytes(PartSize + 400_000, seed: 5);
        var upload = await Uploads.CreateUploadAsync(User("alice"), NewUpload(bytes.Length), CancellationToken.None);
        upload = await AppendAsync(upload, bytes[..100_000]);
        await Assert.ThrowsAsync<ChecksumMismatchException>(() =>
            AppendAsync(upload, bytes[100_000..200_000], new ChunkChecksum("sha1", new byte[20])));
        upload = await AppendAsync(upload, bytes[100_000..200_000]);
        await Assert.ThrowsAsync<UploadContentException>(() => Uploads.AppendAsync(User("alice"), upload,
            new BreakingStream(bytes[200_000..], breakAfter: 300_000), long.MaxValue, null, Now.AddHours(2), CancellationToken.None));
        upload = (await Uploads.GetUploadAsync(User("alice"), upload.Id, CancellationToken.None))!;
        upload = await AppendAsync(upload, bytes[(int)upload.Offset..]);

        var (_, file) = await Uploads.CompleteUploadAsync(User("alice"), upload, File("h.bin"), "application/octet-stream", CancellationToken.None);

        Assert.Equal(Sha256(bytes), file!.Sha256);
        Assert.Equal(bytes, await FileBytesAsync("h.bin"));
    }

    [Fact]
    public async Task A_chunk_whose_checksum_does_not_match_is_discarded()
    {
        var bytes = Bytes(200_000);
        var upload = await Uploads.CreateUploadAsync(User("alice"), NewUpload(bytes.Length), CancellationToken.None);
        upload = await AppendAsync(upload, bytes[..50_000]);

        await Assert.ThrowsAsync<ChecksumMismatchException>(() =>
            AppendAsync(upload, bytes[50_000..], new ChunkChecksum("sha1", new byte[20])));

        Assert.Equal(50_000, (await Uploads.GetUploadAsync(User("alice"), upload.Id, CancellationToken.None))!.Offset);
        upload = await AppendAsync(upload, bytes[50_000..], new ChunkChecksum("sha1", SHA1.HashData(bytes[50_000..])));
        await Uploads.CompleteUploadAsync(User("alice"), upload, File("c.bin"), "application/octet-stream", CancellationToken.None);
        Assert.Equal(bytes, await FileBytesAsync("c.bin"));
    }

    [Fact]
    public async Task An_empty_upload_completes_into_an_empty_file()
    {
        var upload = await Uploads.CreateUploadAsync(User("alice"), NewUpload(0), CancellationToken.None);

        var (_, file) = await Uploads.CompleteUploadAsync(User("alice"), upload, File("empty"), "text/plain", CancellationToken.None);

        Assert.Equal(0, file!.Size);
        Assert.Equal(Array.Empty<byte>(), await FileBytesAsync("empty"));
    }

    [Fact]
    public async Task Concatenation_makes_one_file_from_the_partials_and_removes_them()
    {
        var first = Bytes(PartSize + 10, seed: 1);
        var second = Bytes(70_000, seed: 2);
        var partials = new List<UploadRecord>();
        foreach (var bytes in new[] { first, second })
        {
            var partial = await Uploads.CreateUploadAsync(User("alice"), NewUpload(bytes.Length, partial: true), CancellationToken.None);
            partials.Add(await AppendAsync(partial, bytes));
        }

        var final = NewUpload(first.Length + second.Length) with { PartialIds = partials.Select(p => p.Id).ToList() };
        var (completed, file) = await Uploads.ConcatenateAsync(
            User("alice"), final, partials, File("joined.bin"), "application/octet-stream", long.MaxValue, CancellationToken.None);

        byte[] joined = [.. first, .. second];
        Assert.Equal(Sha256(joined), file!.Sha256);
        Assert.Equal(joined, await FileBytesAsync("joined.bin"));
        Assert.True(completed.IsComplete);
        await AssertBecameFileAsync(final.Id, "joined.bin", "application/octet-stream", joined);
        foreach (var partial in partials)
        {
            Assert.Null(await Uploads.GetUploadAsync(User("alice"), partial.Id, CancellationToken.None));
        }
    }

    [Fact]
    public async Task Usage_counts_unfinished_uploads_by_their_persisted_bytes_and_finished_ones_once()
    {
        var alice = User("alice");
        var upload = await Uploads.CreateUploadAsync(alice, NewUpload(PartSize + 100), CancellationToken.None);
        upload = await AppendAsync(upload, Bytes(PartSize + 10)); // a full part and a tail
        Assert.Equal(PartSize + 10, await Files.GetUsageAsync(alice, CancellationToken.None));

        // A chunk refused by the quota is discarded whole (unlike a broken connection, which keeps what arrived).
        await Assert.ThrowsAsync<QuotaExceededException>(() => Uploads.AppendAsync(
            alice, upload, new ScriptedStream(50, () => throw new QuotaExceededException(1)), long.MaxValue, null,
            Now.AddHours(2), CancellationToken.None));
        Assert.Equal(PartSize + 10, (await Uploads.GetUploadAsync(alice, upload.Id, CancellationToken.None))!.Offset);
        Assert.Equal(PartSize + 10, await Files.GetUsageAsync(alice, CancellationToken.None));

        upload = await AppendAsync(upload, Bytes(90));
        await Uploads.CompleteUploadAsync(alice, upload, File("done.bin"), "application/octet-stream", CancellationToken.None);
        Assert.Equal(PartSize + 100, await Files.GetUsageAsync(alice, CancellationToken.None));
        Assert.Equal(0, await Files.GetUsageAsync(User("bob"), CancellationToken.None));
    }

    [Fact]
    public async Task Termination_removes_the_upload_and_its_bytes()
    {
        var upload = await Uploads.CreateUploadAsync(User("alice"), NewUpload(2 * PartSize), CancellationToken.None);
        await AppendAsync(upload, Bytes(PartSize + 5));

        Assert.True(await Uploads.DeleteUploadAsync(User("alice"), upload.Id, CancellationToken.None));

        Assert.Null(await Uploads.GetUploadAsync(User("alice"), upload.Id, CancellationToken.None));
        Assert.False(await Uploads.DeleteUploadAsync(User("alice"), upload.Id, CancellationToken.None));
        Assert.Empty(await StoredEntriesAsync());
    }

    [Fact]
    public async Task The_expiry_sweep_removes_expired_uploads_skips_locked_ones_and_keeps_finished_files()
    {
        var expired = await Uploads.CreateUploadAsync(User("alice"), NewUpload(100), CancellationToken.None);
        await AppendAsync(expired, Bytes(10));
        var locked = await Uploads.CreateUploadAsync(User("bob"), NewUpload(100), CancellationToken.None);
        var finished = await Uploads.CreateUploadAsync(User("alice"), NewUpload(3), CancellationToken.None);
        finished = await AppendAsync(finished, Bytes(3));
        await Uploads.CompleteUploadAsync(User("alice"), finished, File("kept.bin"), "text/plain", CancellationToken.None);
        var fresh = await Uploads.CreateUploadAsync(User("alice"), NewUpload(100) with { ExpiresAt = Now.AddDays(9) }, CancellationToken.None);

        var removed = await Uploads.DeleteExpiredUploadsAsync(Now.AddDays(1), id => id == locked.Id ? null : new Lock(), CancellationToken.None);

        Assert.Equal(2, removed); // expired and finished (its file stays)
        Assert.Null(await Uploads.GetUploadAsync(User("alice"), expired.Id, CancellationToken.None));
        Assert.NotNull(await Uploads.GetUploadAsync(User("bob"), locked.Id, CancellationToken.None));
        Assert.NotNull(await Uploads.GetUploadAsync(User("alice"), fresh.Id, CancellationToken.None));
        Assert.Equal(Bytes(3), await FileBytesAsync("kept.bin"));
    }

    private sealed class Lock : IDisposable
    {
        public void Dispose() { }
    }

    /// <summary>Serves <paramref name="bytes"/> until <paramref name="breakAfter"/> of them, then fails like a dropped connection.</summary>
    private sealed class BreakingStream(byte[] bytes, int breakAfter) : Stream
    {
        private int _position;

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position >= breakAfter)
            {
                throw new IOException("connection reset");
            }

            var count = Math.Min(buffer.Length, breakAfter - _position);
            bytes.AsSpan(_position, count).CopyTo(buffer.Span);
            _position += count;
            return ValueTask.FromResult(count);
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>The shared upload suite on the filesystem backend (a new instance over the same root).</summary>
public sealed class FileSystemUploadStoreTests : UploadStoreContractTests
{
    private readonly TempDirectory _root = new();
    private FileSystemFileStore? _store;

    protected override IUploadStore Uploads => _store!;

    public override Task InitializeAsync()
    {
        _store = new FileSystemFileStore(_root.Path);
        return Task.CompletedTask;
    }

    public override Task DisposeAsync()
    {
        _root.Dispose();
        return Task.CompletedTask;
    }

    protected override Task ReopenAsync()
    {
        _store = new FileSystemFileStore(_root.Path);
        return Task.CompletedTask;
    }

    protected override Task<IReadOnlyList<string>> StoredEntriesAsync() =>
        Task.FromResult<IReadOnlyList<string>>(_root.AllFiles().ToList());
}

/// <summary>The shared upload suite on the s3 backend; a reopened store starts with an empty local disk.</summary>
[Collection(S3ServerCollection.Name)]
public sealed class S3UploadStoreTests(S3Server server) : UploadStoreContractTests
{
    private readonly List<TempDirectory> _disks = [];
    private string _bucket = "";
    private S3FileStore? _store;

    protected override IUploadStore Uploads => _store!;

    public override async Task InitializeAsync()
    {
        _bucket = await server.CreateBucketAsync();
        await ReopenAsync();
    }

    public override Task DisposeAsync()
    {
        _store?.Dispose();
        _disks.ForEach(disk => disk.Dispose());
        return Task.CompletedTask;
    }

    protected override Task ReopenAsync()
    {
        _store?.Dispose();
        var disk = new TempDirectory();
        _disks.Add(disk);
        _store = new S3FileStore(server.Options(_bucket, disk.Path));
        return Task.CompletedTask;
    }

    protected override Task<IReadOnlyList<string>> StoredEntriesAsync() => server.KeysAsync(_bucket);
}
