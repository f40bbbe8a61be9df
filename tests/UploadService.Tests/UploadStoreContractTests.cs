using System.Security.Cryptography;
using Amazon.S3.Model;
using UploadService.Domain;
using UploadService.Storage;
using UploadService.Tus;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

/// <summary>
/// What every <see cref="ITusStore"/> backend promises for resumable (tus) uploads, run once per backend:
/// chunks of any size (across the s3 backend's 5 MiB parts), resuming from a brand-new store instance (for
/// s3: an empty local disk), broken connections, checksums, concatenation, termination and expiry.
/// </summary>
public abstract class UploadStoreContractTests : IAsyncLifetime
{
    protected const int PartSize = (int)S3StoreOptions.MinPartSizeBytes;
    private const string Binary = "application/octet-stream";
    // The stores read the system clock (an unfinished upload's bytes count against the quota until it expires).
    protected static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;

    private readonly TusRunningHashes _hashes = new();

    /// <summary>The store under test; a new instance over the same storage after <see cref="ReopenAsync"/>.</summary>
    protected abstract ITusStore Uploads { get; }

    protected IFileStore Files => (IFileStore)Uploads;

    /// <summary>Replaces the store with a new instance over the same durable storage (a restarted, or fresh, container).</summary>
    protected abstract Task ReopenAsync();

    /// <summary>Every stored entry (file path or object key).</summary>
    protected abstract Task<IReadOnlyList<string>> StoredEntriesAsync();

    public abstract Task InitializeAsync();

    public abstract Task DisposeAsync();

    protected static TusUploadInfo NewUpload(long? length, string name = "unnamed.bin", string contentType = Binary) =>
        new(UploadId.New().Value, length, 0, null, false, null, Now, Now.AddHours(1), name, contentType);

    private static TusUploadInfo NewPartial(long length) =>
        new(UploadId.New().Value, length, 0, null, true, null, Now, Now.AddHours(1), null, null);

    protected Task<TusUpload> CreateAsync(TusUploadInfo upload, string user = "alice") =>
        Uploads.CreateUploadAsync(User(user), upload, CancellationToken.None);

    private Task<TusUpload?> GetAsync(string id, string user = "alice") =>
        Uploads.GetUploadAsync(User(user), UploadId.Stored(id), CancellationToken.None);

    protected Task AppendAsync(TusUpload upload, byte[] chunk, ChunkChecksum? checksum = null, DateTimeOffset? expiresAt = null) =>
        AppendAsync(upload, new MemoryStream(chunk), checksum, expiresAt);

    private Task AppendAsync(TusUpload upload, Stream body, ChunkChecksum? checksum = null, DateTimeOffset? expiresAt = null) =>
        upload.AppendAsync(body, _hashes, checksum, expiresAt: expiresAt ?? Now.AddHours(2));

    /// <summary>
    /// What a complete upload reads as afterwards: complete and committed, its file there with its type and
    /// SHA-256; and committing it again (what HEAD and PATCH do for an upload that reads complete but not
    /// committed) changes nothing.
    /// </summary>
    private async Task AssertCommittedAsync(string id, string name, string contentType, byte[] bytes)
    {
        var upload = await GetAsync(id);
        Assert.NotNull(upload);
        Assert.True(upload.Info.IsComplete);
        await upload.CommitAsync(null, CancellationToken.None);

        Assert.True(upload.Info.IsCommitted);
        Assert.Equal(name, upload.Info.FileName);
        Assert.Equal(bytes, await FileBytesAsync(name));
        var listed = await Files.ListAsync(User("alice"), name, 10, null, CancellationToken.None);
        var file = Assert.Single(listed.Files, f => f.Name == name);
        Assert.Equal(contentType, file.ContentType);
        Assert.Equal(Sha256(bytes), file.Sha256);
    }

    protected async Task<byte[]?> FileBytesAsync(string name)
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
    public async Task Chunks_of_any_size_resume_on_a_new_store_and_the_last_one_commits_the_file()
    {
        var bytes = Bytes(2 * PartSize + 1234);
        var upload = await CreateAsync(NewUpload(bytes.Length, "videos/v.mp4", "video/mp4"));
        await AppendAsync(upload, bytes[..3_000_000]);
        await AppendAsync(upload, bytes[3_000_000..6_500_000]); // crosses the first part boundary

        await ReopenAsync();

        var resumed = await GetAsync(upload.Info.Id);
        Assert.NotNull(resumed);
        Assert.Equal(6_500_000, resumed.Info.Offset);
        Assert.Equal(Now.AddHours(2), resumed.Info.ExpiresAt);
        Assert.False(resumed.Info.IsCommitted);
        await AppendAsync(resumed, bytes[6_500_000..]);

        Assert.True(resumed.Info.IsComplete);
        Assert.True(resumed.Info.IsCommitted);
        using var content = await Files.OpenReadAsync(User("alice"), File("videos/v.mp4"), CancellationToken.None);
        Assert.Equal(new StoredFile("videos/v.mp4", bytes.Length, Sha256(bytes), "video/mp4", content!.File.CreatedAt), content.File);
        Assert.Equal(bytes, await FileBytesAsync("videos/v.mp4"));
        await AssertCommittedAsync(upload.Info.Id, "videos/v.mp4", "video/mp4", bytes);
    }

    [Fact]
    public async Task A_broken_connection_keeps_the_bytes_that_arrived()
    {
        var bytes = Bytes(PartSize + 300_000);
        var upload = await CreateAsync(NewUpload(bytes.Length, "b.bin"));
        var breaking = new BreakingStream(bytes, breakAfter: PartSize + 100_000);

        await Assert.ThrowsAsync<UploadContentException>(() => AppendAsync(upload, breaking));

        await ReopenAsync();
        var resumed = await GetAsync(upload.Info.Id);
        Assert.Equal(PartSize + 100_000, resumed!.Info.Offset);
        await AppendAsync(resumed, bytes[(int)resumed.Info.Offset..]);
        Assert.Equal(bytes, await FileBytesAsync("b.bin"));
    }

    [Fact]
    public async Task The_sha256_covers_exactly_the_kept_bytes_after_discarded_and_broken_chunks()
    {
        // The chunks may hash the bytes as they arrive; a discarded chunk and the part of a broken one that
        // was dropped must not count, and one that was kept must.
        var bytes = Bytes(PartSize + 400_000, seed: 5);
        var upload = await CreateAsync(NewUpload(bytes.Length, "h.bin"));
        await AppendAsync(upload, bytes[..100_000]);
        await Assert.ThrowsAsync<ChecksumMismatchException>(() =>
            AppendAsync(upload, bytes[100_000..200_000], new ChunkChecksum("sha1", new byte[20])));
        await AppendAsync(upload, bytes[100_000..200_000]);
        await Assert.ThrowsAsync<UploadContentException>(() =>
            AppendAsync(upload, new BreakingStream(bytes[200_000..], breakAfter: 300_000)));
        upload = (await GetAsync(upload.Info.Id))!;
        await AppendAsync(upload, bytes[(int)upload.Info.Offset..]);

        using var content = await Files.OpenReadAsync(User("alice"), File("h.bin"), CancellationToken.None);
        Assert.Equal(Sha256(bytes), content!.File.Sha256);
        Assert.Equal(bytes, await FileBytesAsync("h.bin"));
    }

    [Fact]
    public async Task A_chunk_whose_checksum_does_not_match_is_discarded()
    {
        var bytes = Bytes(200_000);
        var upload = await CreateAsync(NewUpload(bytes.Length, "c.bin"));
        await AppendAsync(upload, bytes[..50_000]);

        await Assert.ThrowsAsync<ChecksumMismatchException>(() =>
            AppendAsync(upload, bytes[50_000..], new ChunkChecksum("sha1", new byte[20])));

        Assert.Equal(50_000, (await GetAsync(upload.Info.Id))!.Info.Offset);
        await AppendAsync(upload, bytes[50_000..], new ChunkChecksum("sha1", SHA1.HashData(bytes[50_000..])));
        Assert.Equal(bytes, await FileBytesAsync("c.bin"));
    }

    [Fact]
    public async Task An_empty_upload_commits_into_an_empty_file()
    {
        var upload = await CreateAsync(NewUpload(0, "empty", "text/plain"));

        await upload.CommitAsync(null, CancellationToken.None);

        Assert.Equal(Array.Empty<byte>(), await FileBytesAsync("empty"));
        await AssertCommittedAsync(upload.Info.Id, "empty", "text/plain", []);
    }

    [Fact]
    public async Task Concatenation_makes_one_file_from_the_partials_and_removes_them()
    {
        var first = Bytes(PartSize + 10, seed: 1);
        var second = Bytes(70_000, seed: 2);
        var partials = new List<TusUpload>();
        foreach (var bytes in new[] { first, second })
        {
            var partial = await CreateAsync(NewPartial(bytes.Length));
            await AppendAsync(partial, bytes);
            Assert.True(partial.Info.IsComplete);
            Assert.False(partial.Info.IsCommitted); // a partial's bytes wait for the final upload
            partials.Add(partial);
        }

        var final = NewUpload(first.Length + second.Length, "joined.bin") with { PartialIds = partials.Select(p => p.Info.Id).ToList() };
        var completed = await Uploads.ConcatenateAsync(User("alice"), final, partials, long.MaxValue, CancellationToken.None);

        byte[] joined = [.. first, .. second];
        Assert.True(completed.Info.IsComplete);
        await AssertCommittedAsync(final.Id, "joined.bin", Binary, joined);
        foreach (var partial in partials)
        {
            Assert.Null(await GetAsync(partial.Info.Id));
        }
    }

    [Fact]
    public async Task Usage_counts_unfinished_uploads_by_their_persisted_bytes_and_committed_ones_once()
    {
        var alice = User("alice");
        var upload = await CreateAsync(NewUpload(PartSize + 100, "done.bin"));
        await AppendAsync(upload, Bytes(PartSize + 10)); // a full part and a tail
        Assert.Equal(PartSize + 10, await Files.GetUsageAsync(alice, CancellationToken.None));

        // A chunk refused by the quota is discarded whole (unlike a broken connection, which keeps what arrived).
        await Assert.ThrowsAsync<QuotaExceededException>(() =>
            AppendAsync(upload, new ScriptedStream(50, () => throw new QuotaExceededException(1))));
        Assert.Equal(PartSize + 10, (await GetAsync(upload.Info.Id))!.Info.Offset);
        Assert.Equal(PartSize + 10, await Files.GetUsageAsync(alice, CancellationToken.None));

        await AppendAsync(upload, Bytes(90));
        Assert.True(upload.Info.IsCommitted);
        Assert.Equal(PartSize + 100, await Files.GetUsageAsync(alice, CancellationToken.None));
        Assert.Equal(0, await Files.GetUsageAsync(User("bob"), CancellationToken.None));
    }

    [Fact]
    public async Task Termination_removes_the_upload_and_its_bytes()
    {
        var upload = await CreateAsync(NewUpload(2 * PartSize));
        await AppendAsync(upload, Bytes(PartSize + 5));

        await upload.TerminateAsync(CancellationToken.None);

        Assert.Null(await GetAsync(upload.Info.Id));
        Assert.Empty(await StoredEntriesAsync());
    }

    [Fact]
    public async Task The_expiry_sweep_removes_expired_uploads_skips_locked_ones_and_keeps_committed_files()
    {
        var expired = await CreateAsync(NewUpload(100));
        await AppendAsync(expired, Bytes(10));
        var locked = await CreateAsync(NewUpload(100), "bob");
        var committed = await CreateAsync(NewUpload(3, "kept.bin", "text/plain"));
        await AppendAsync(committed, Bytes(3));
        var fresh = await CreateAsync(NewUpload(100) with { ExpiresAt = Now.AddDays(9) });

        var removed = await Uploads.DeleteExpiredUploadsAsync(Now.AddDays(1), id => id == locked.Info.Id ? null : new Lock(), CancellationToken.None);

        Assert.Equal(2, removed); // expired and committed (its file stays)
        Assert.Null(await GetAsync(expired.Info.Id));
        Assert.NotNull(await GetAsync(locked.Info.Id, "bob"));
        Assert.NotNull(await GetAsync(fresh.Info.Id));
        Assert.Equal(Bytes(3), await FileBytesAsync("kept.bin"));
    }

    [Fact]
    public async Task A_request_that_ends_after_the_last_byte_still_commits_the_upload()
    {
        // A client that leaves once it has sent everything cancels its request while the commit runs.
        var bytes = Bytes(PartSize + 1000, seed: 9);
        var upload = await CreateAsync(NewUpload(bytes.Length, "left.bin"));
        await AppendAsync(upload, bytes[..1000]);
        using var leaving = new CancellationTokenSource();

        using (var chunk = new TusChunk(new CancelAtEndStream(bytes[1000..], leaving), upload.Info, long.MaxValue, null, _hashes))
        {
            await upload.AppendAsync(chunk, upload.Info, leaving.Token);
        }

        Assert.True(leaving.IsCancellationRequested);
        Assert.True(upload.Info.IsCommitted);
        Assert.Equal(bytes, await FileBytesAsync("left.bin"));
    }

    protected sealed class Lock : IDisposable
    {
        public void Dispose() { }
    }

    /// <summary>Serves <paramref name="bytes"/>, then cancels <paramref name="request"/> as it reports the end.</summary>
    private sealed class CancelAtEndStream(byte[] bytes, CancellationTokenSource request) : MemoryStream(bytes)
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await base.ReadAsync(buffer, CancellationToken.None);
            if (read == 0)
            {
                await request.CancelAsync();
            }

            return read;
        }
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

    protected override ITusStore Uploads => _store!;

    public override Task InitializeAsync()
    {
        _store = new FileSystemFileStore(_root.Path).Opened();
        return Task.CompletedTask;
    }

    public override Task DisposeAsync()
    {
        _root.Dispose();
        return Task.CompletedTask;
    }

    protected override Task ReopenAsync()
    {
        _store = new FileSystemFileStore(_root.Path).Opened();
        return Task.CompletedTask;
    }

    protected override Task<IReadOnlyList<string>> StoredEntriesAsync() =>
        Task.FromResult<IReadOnlyList<string>>(_root.AllFiles().ToList());

    [Fact]
    public async Task A_state_of_an_older_layout_reads_as_no_upload_and_the_sweep_removes_it()
    {
        var id = UploadId.New().Value;
        var directory = Path.Combine(_root.Path, "uploads", StoreKey("alice"));
        Directory.CreateDirectory(directory);
        // What the store wrote before the file an upload becomes was kept with it: no ContentType.
        await System.IO.File.WriteAllTextAsync(Path.Combine(directory, id + ".json"), $$"""
            {"Id":"{{id}}","Length":10,"Offset":4,"Metadata":null,"IsPartial":false,"PartialIds":null,
             "CreatedAt":"2026-01-01T00:00:00+00:00","ExpiresAt":"2026-01-02T00:00:00+00:00","FileName":null,"ContentId":null}
            """);
        await System.IO.File.WriteAllBytesAsync(Path.Combine(directory, id + ".bin"), new byte[4]);

        Assert.Null(await Uploads.GetUploadAsync(User("alice"), UploadId.Stored(id), CancellationToken.None));
        Assert.Equal(1, await Uploads.DeleteExpiredUploadsAsync(DateTimeOffset.UtcNow, _ => new Lock(), CancellationToken.None));
        Assert.Empty(Directory.EnumerateFiles(directory));
    }
}

/// <summary>The shared upload suite on the s3 backend; a reopened store starts with nothing in memory.</summary>
[Collection(S3ServerCollection.Name)]
public sealed class S3UploadStoreTests(S3Server server) : UploadStoreContractTests
{
    private string _bucket = "";
    private S3FileStore? _store;

    protected override ITusStore Uploads => _store!;

    public override async Task InitializeAsync()
    {
        _bucket = await server.CreateBucketAsync();
        await ReopenAsync();
    }

    public override Task DisposeAsync()
    {
        _store?.Dispose();
        return Task.CompletedTask;
    }

    protected override Task ReopenAsync()
    {
        _store?.Dispose();
        _store = new S3FileStore(server.Options(_bucket)).Opened();
        return Task.CompletedTask;
    }

    protected override Task<IReadOnlyList<string>> StoredEntriesAsync() => server.KeysAsync(_bucket);

    [Fact]
    public async Task A_state_of_an_older_layout_reads_as_no_upload_and_the_sweep_removes_it_with_its_tail_but_no_blob()
    {
        var id = UploadId.New().Value;
        var prefix = $"uploads/{StoreKey("alice")}/{id}/";
        var blobKey = $"users/{StoreKey("alice")}/blobs/{id}";
        using var client = server.CreateClient();
        // What the store wrote before its fields were renamed (Record, BytesFinished); the blob may be a file's.
        await client.PutObjectAsync(new PutObjectRequest
        {
            BucketName = _bucket,
            Key = prefix + "state",
            ContentBody = $$"""
                {"Record":{"Id":"{{id}}","Length":10,"Offset":3,"Metadata":null,"IsPartial":false,"PartialIds":null,
                 "CreatedAt":"2026-01-01T00:00:00+00:00","ExpiresAt":"2026-01-02T00:00:00+00:00"},
                 "BlobKey":"{{blobKey}}","MultipartId":null,"Parts":[],"TailKey":"{{prefix}}tail.1","TailLength":3,"BytesFinished":false}
                """,
        });
        await client.PutObjectAsync(new PutObjectRequest { BucketName = _bucket, Key = prefix + "tail.1", ContentBody = "abc" });
        await client.PutObjectAsync(new PutObjectRequest { BucketName = _bucket, Key = blobKey, ContentBody = "a file's bytes" });

        Assert.Null(await Uploads.GetUploadAsync(User("alice"), UploadId.Stored(id), CancellationToken.None));
        Assert.Equal(1, await Uploads.DeleteExpiredUploadsAsync(DateTimeOffset.UtcNow, _ => new Lock(), CancellationToken.None));
        Assert.Equal([blobKey], await server.KeysAsync(_bucket));
    }

    [Fact]
    public async Task A_small_upload_committed_by_its_record_reads_committed_on_a_new_store_after_its_file_is_replaced_or_deleted()
    {
        // Each completes in one append: the record alone says so (its state stays the creation's, offset 0).
        var replaced = await CreateAsync(NewUpload(4096, "replaced.bin"));
        await AppendAsync(replaced, Bytes(4096, seed: 1));
        var deleted = await CreateAsync(NewUpload(100, "deleted.bin"));
        await AppendAsync(deleted, Bytes(100, seed: 2));
        var kept = await CreateAsync(NewUpload(10, "kept.bin"));
        await AppendAsync(kept, Bytes(10, seed: 3));
        await ReopenAsync();

        await Files.SaveAsync(User("alice"), File("replaced.bin"), new MemoryStream(Bytes(5, seed: 4)), "text/plain", long.MaxValue, CancellationToken.None);
        Assert.True(await Files.DeleteAsync(User("alice"), File("deleted.bin"), CancellationToken.None));
        await ReopenAsync();

        foreach (var upload in new[] { replaced, deleted, kept })
        {
            var read = await Uploads.GetUploadAsync(User("alice"), UploadId.Stored(upload.Info.Id), CancellationToken.None);
            Assert.True(read is { Info.IsCommitted: true }, upload.Info.FileName);
            Assert.Equal(upload.Info.Length, read.Info.Offset);
        }

        Assert.Equal(Bytes(5, seed: 4), await FileBytesAsync("replaced.bin"));
        Assert.Null(await FileBytesAsync("deleted.bin"));
        Assert.Equal(Bytes(10, seed: 3), await FileBytesAsync("kept.bin"));
        Assert.Equal(0, await Uploads.DeleteExpiredUploadsAsync(DateTimeOffset.UtcNow, _ => new Lock(), CancellationToken.None));
        Assert.Equal(3, await Uploads.DeleteExpiredUploadsAsync(DateTimeOffset.UtcNow.AddDays(1), _ => new Lock(), CancellationToken.None));
        Assert.Equal(Bytes(10, seed: 3), await FileBytesAsync("kept.bin")); // the sweep removes states, never a file
    }

    [Fact]
    public async Task A_small_upload_without_its_bytes_stays_unfinished_on_a_new_store_beside_a_file_of_its_name()
    {
        await Files.SaveAsync(User("alice"), File("small.bin"), new MemoryStream(Bytes(7)), "text/plain", long.MaxValue, CancellationToken.None);
        var upload = await CreateAsync(NewUpload(3000, "small.bin"));
        await ReopenAsync();

        var read = await Uploads.GetUploadAsync(User("alice"), UploadId.Stored(upload.Info.Id), CancellationToken.None);

        Assert.True(read is { Info.Offset: 0, Info.IsCommitted: false });
        await AppendAsync(read, Bytes(1000, seed: 5));
        await ReopenAsync();
        read = await Uploads.GetUploadAsync(User("alice"), UploadId.Stored(upload.Info.Id), CancellationToken.None);
        Assert.True(read is { Info.Offset: 1000, Info.IsCommitted: false });
        await AppendAsync(read, Bytes(2000, seed: 6));
        byte[] bytes = [.. Bytes(1000, seed: 5), .. Bytes(2000, seed: 6)];
        Assert.Equal(bytes, await FileBytesAsync("small.bin"));
    }

    [Fact]
    public async Task A_new_process_sweeps_only_users_it_has_served_and_counts_no_expired_upload_against_the_quota()
    {
        // Unfinished, and expired since yesterday: what a day without requests leaves.
        var expired = await CreateAsync(NewUpload(100) with { CreatedAt = Now.AddDays(-2), ExpiresAt = Now.AddDays(-1) }, "carol");
        await AppendAsync(expired, Bytes(40), expiresAt: Now.AddDays(-1));
        await ReopenAsync(); // a fresh container: it has served nobody yet, and may list only its users' prefixes

        Assert.Equal(0, await Uploads.DeleteExpiredUploadsAsync(DateTimeOffset.UtcNow, _ => new Lock(), CancellationToken.None));
        Assert.Equal(0, await Files.GetUsageAsync(User("carol"), CancellationToken.None)); // expired: holds no quota
        Assert.Equal(1, await Uploads.DeleteExpiredUploadsAsync(DateTimeOffset.UtcNow, _ => new Lock(), CancellationToken.None));
        Assert.Empty(await server.KeysAsync(_bucket));
    }
}
