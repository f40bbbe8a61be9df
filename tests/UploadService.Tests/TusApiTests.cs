using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using UploadService.Domain;
using UploadService.Storage;
using UploadService.Tus;

namespace UploadService.Tests;

/// <summary>tus 1.0.0 against the real service on Kestrel (Upload:MaxFileBytes = 64 KiB here).</summary>
public sealed class TusApiTests(UploadServiceFactory service) : IClassFixture<UploadServiceFactory>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    // Generous: on a loaded 2-core CI machine the first request's handler can start late.
    private static readonly TimeSpan LockDeadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Options_advertises_version_extensions_max_size_and_checksums()
    {
        using var response = await service.Client.SendAsync(new HttpRequestMessage(HttpMethod.Options, "/uploads"));
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal("1.0.0", Header(response, "Tus-Version"));
        Assert.Equal("1.0.0", Header(response, "Tus-Resumable"));
        Assert.Equal(
            "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation",
            Header(response, "Tus-Extension"));
        Assert.Equal(UploadServiceFactory.MaxFileBytes.ToString(), Header(response, "Tus-Max-Size"));
        Assert.Equal("sha1,sha256,md5", Header(response, "Tus-Checksum-Algorithm"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("0.2.2")]
    public async Task A_request_without_tus_1_0_0_is_412_with_Tus_Version(string? version)
    {
        using var request = Tus(HttpMethod.Post, "/uploads", "u412", version: version);
        request.Headers.Add("Upload-Length", "5");
        using var response = await service.Client.SendAsync(request);
        await AssertProblemAsync(response, HttpStatusCode.PreconditionFailed);
        Assert.Equal("1.0.0", Header(response, "Tus-Version"));
    }

    [Fact]
    public async Task Create_patch_head_complete_makes_a_file_as_if_PUT()
    {
        var user = NewUser();
        var bytes = Names.Bytes(40_000, seed: 3);
        var location = await CreateAsync(user, bytes.Length, "docs/report.pdf", "application/pdf",
            forwarded: ("files.example.test", "https"));
        Assert.StartsWith("https://files.example.test/uploads/", location.ToString());

        using (var head = await service.Client.SendAsync(Tus(HttpMethod.Head, location.AbsolutePath, user)))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal("0", Header(head, "Upload-Offset"));
            Assert.Equal("40000", Header(head, "Upload-Length"));
            Assert.Equal("no-store", head.Headers.CacheControl?.ToString());
            Assert.NotNull(Header(head, "Upload-Expires"));
            Assert.Contains("filename ", Header(head, "Upload-Metadata"));
        }

        using (var first = await PatchAsync(user, location, 0, bytes[..25_000]))
        {
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
            Assert.Equal("25000", Header(first, "Upload-Offset"));
            Assert.Null(await ListedAsync(user, "docs/report.pdf")); // not a file until complete
        }

        using (var last = await PatchAsync(user, location, 25_000, bytes[25_000..]))
        {
            Assert.Equal(HttpStatusCode.NoContent, last.StatusCode);
            Assert.Equal("40000", Header(last, "Upload-Offset"));
            Assert.Equal("1.0.0", Header(last, "Tus-Resumable"));
        }

        var file = await ListedAsync(user, "docs/report.pdf");
        Assert.NotNull(file);
        Assert.Equal(Names.Sha256(bytes), file.Sha256);
        Assert.Equal("application/pdf", file.ContentType);
        Assert.Equal(bytes, await FileBytesAsync(user, "docs/report.pdf"));

        using var headAfter = await service.Client.SendAsync(Tus(HttpMethod.Head, location.AbsolutePath, user));
        Assert.Equal("40000", Header(headAfter, "Upload-Offset"));
    }

    [Fact]
    public async Task Location_falls_back_to_the_request_host_without_forwarded_headers()
    {
        var location = await CreateAsync(NewUser(), 1, "a.txt");
        Assert.Equal(service.Client.BaseAddress!.Authority, location.Authority);
    }

    [Fact]
    public async Task X_HTTP_Method_Override_on_POST_acts_as_PATCH()
    {
        var user = NewUser();
        var location = await CreateAsync(user, 3, "o.txt");
        using var request = Tus(HttpMethod.Post, location.AbsolutePath, user, "abc"u8.ToArray());
        request.Headers.Add("X-HTTP-Method-Override", "PATCH");
        request.Headers.Add("Upload-Offset", "0");
        using var response = await service.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal("abc"u8.ToArray(), await FileBytesAsync(user, "o.txt"));
    }

    [Fact]
    public async Task Patch_with_another_content_type_is_415()
    {
        var user = NewUser();
        var location = await CreateAsync(user, 3, "t.txt");
        using var request = Tus(HttpMethod.Patch, location.AbsolutePath, user, "abc"u8.ToArray());
        request.Content!.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        request.Headers.Add("Upload-Offset", "0");
        await AssertProblemAsync(await service.Client.SendAsync(request), HttpStatusCode.UnsupportedMediaType);
    }

    [Fact]
    public async Task Patch_at_the_wrong_offset_is_409_and_changes_nothing()
    {
        var user = NewUser();
        var location = await CreateAsync(user, 10, "c.txt");
        using (var ok = await PatchAsync(user, location, 0, "12345"u8.ToArray()))
            Assert.Equal(HttpStatusCode.NoContent, ok.StatusCode);
        await AssertProblemAsync(await PatchAsync(user, location, 3, "xxxxx"u8.ToArray()), HttpStatusCode.Conflict);
        await AssertProblemAsync(await PatchAsync(user, location, 0, "xxxxx"u8.ToArray()), HttpStatusCode.Conflict);
        Assert.Equal(5, await OffsetAsync(user, location));
    }

    [Theory]
    [InlineData("sha1")]
    [InlineData("sha256")]
    [InlineData("md5")]
    public async Task Checksum_mismatch_is_460_and_the_chunk_is_discarded(string algorithm)
    {
        var user = NewUser();
        var location = await CreateAsync(user, 8, "k.txt");
        var chunk = "abcd"u8.ToArray();

        using (var bad = await PatchAsync(user, location, 0, chunk, checksum: $"{algorithm} {Convert.ToBase64String(Digest(algorithm, "abcX"u8.ToArray()))}"))
        {
            await AssertProblemAsync(bad, (HttpStatusCode)460);
            Assert.Equal("1.0.0", Header(bad, "Tus-Resumable"));
        }

        Assert.Equal(0, await OffsetAsync(user, location));
        using (var good = await PatchAsync(user, location, 0, chunk, checksum: $"{algorithm} {Convert.ToBase64String(Digest(algorithm, chunk))}"))
            Assert.Equal(HttpStatusCode.NoContent, good.StatusCode);
        Assert.Equal(4, await OffsetAsync(user, location));
    }

    [Fact]
    public async Task An_unsupported_checksum_algorithm_is_400()
    {
        var user = NewUser();
        var location = await CreateAsync(user, 4, "k2.txt");
        await AssertProblemAsync(await PatchAsync(user, location, 0, "abcd"u8.ToArray(), checksum: "crc32 AAAAAA=="), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task More_than_Tus_Max_Size_is_413_at_creation_and_past_the_length_in_a_patch()
    {
        var user = NewUser();
        using (var create = Tus(HttpMethod.Post, "/uploads", user))
        {
            create.Headers.Add("Upload-Length", (UploadServiceFactory.MaxFileBytes + 1).ToString());
            create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "big.bin")]));
            await AssertProblemAsync(await service.Client.SendAsync(create), HttpStatusCode.RequestEntityTooLarge);
        }

        var location = await CreateAsync(user, 4, "small.bin");
        await AssertProblemAsync(await PatchAsync(user, location, 0, "abcde"u8.ToArray()), HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal(0, await OffsetAsync(user, location));
    }

    [Fact]
    public async Task Unknown_uploads_and_other_users_uploads_are_404()
    {
        var user = NewUser();
        var location = await CreateAsync(user, 4, "mine.bin");
        using (var other = await service.Client.SendAsync(Tus(HttpMethod.Head, location.AbsolutePath, NewUser())))
            Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);
        await AssertProblemAsync(await PatchAsync(NewUser(), location, 0, "abcd"u8.ToArray()), HttpStatusCode.NotFound);
        await AssertProblemAsync(await PatchAsync(user, new Uri(service.Client.BaseAddress!, "/uploads/not-an-id"), 0, [1]), HttpStatusCode.NotFound);
        await AssertProblemAsync(await service.Client.SendAsync(Tus(HttpMethod.Delete, $"/uploads/{UploadId.New()}", user)), HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("../etc/passwd")]
    [InlineData("a//b")]
    public async Task Creation_needs_a_valid_filename(string? filename)
    {
        using var create = Tus(HttpMethod.Post, "/uploads", NewUser());
        create.Headers.Add("Upload-Length", "1");
        if (filename is not null)
        {
            create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", filename)]));
        }

        await AssertProblemAsync(await service.Client.SendAsync(create), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Creation_needs_a_length_or_defer_length()
    {
        using var create = Tus(HttpMethod.Post, "/uploads", NewUser());
        create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "x")]));
        await AssertProblemAsync(await service.Client.SendAsync(create), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Termination_removes_the_upload_and_its_bytes()
    {
        var user = NewUser();
        var location = await CreateAsync(user, 10, "gone.bin");
        using (var patch = await PatchAsync(user, location, 0, "12345"u8.ToArray()))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);

        using (var delete = await service.Client.SendAsync(Tus(HttpMethod.Delete, location.AbsolutePath, user)))
        {
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
            Assert.Equal("1.0.0", Header(delete, "Tus-Resumable"));
        }

        using (var head = await service.Client.SendAsync(Tus(HttpMethod.Head, location.AbsolutePath, user)))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        await AssertProblemAsync(await PatchAsync(user, location, 5, "67890"u8.ToArray()), HttpStatusCode.NotFound);
        var id = location.Segments[^1];
        Assert.DoesNotContain(new TempDirectoryView(service.StorageRoot).AllFiles(), path => path.Contains(id, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Creation_with_upload_stores_the_first_chunk()
    {
        var user = NewUser();
        using var create = Tus(HttpMethod.Post, "/uploads", user, "hello"u8.ToArray());
        create.Headers.Add("Upload-Length", "11");
        create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "greeting.txt"), new("filetype", "text/plain")]));
        using var created = await service.Client.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("5", Header(created, "Upload-Offset"));

        using (var rest = await PatchAsync(user, created.Headers.Location!, 5, " world"u8.ToArray()))
            Assert.Equal(HttpStatusCode.NoContent, rest.StatusCode);
        Assert.Equal("hello world"u8.ToArray(), await FileBytesAsync(user, "greeting.txt"));
        Assert.Equal("text/plain", (await ListedAsync(user, "greeting.txt"))!.ContentType);
    }

    [Fact]
    public async Task Creation_with_the_whole_body_completes_at_once()
    {
        var user = NewUser();
        using var create = Tus(HttpMethod.Post, "/uploads", user, "all"u8.ToArray());
        create.Headers.Add("Upload-Length", "3");
        create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "all.txt")]));
        using var created = await service.Client.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("all"u8.ToArray(), await FileBytesAsync(user, "all.txt"));
    }

    [Fact]
    public async Task An_empty_upload_becomes_an_empty_file_at_creation()
    {
        var user = NewUser();
        await CreateAsync(user, 0, "empty.txt");
        Assert.Equal(0, (await ListedAsync(user, "empty.txt"))!.Size);
    }

    [Fact]
    public async Task Deferred_length_is_reported_until_a_patch_settles_it()
    {
        var user = NewUser();
        using var create = Tus(HttpMethod.Post, "/uploads", user);
        create.Headers.Add("Upload-Defer-Length", "1");
        create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "stream.log")]));
        using var created = await service.Client.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var location = created.Headers.Location!;

        using (var first = await PatchAsync(user, location, 0, "abc"u8.ToArray()))
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        using (var head = await service.Client.SendAsync(Tus(HttpMethod.Head, location.AbsolutePath, user)))
        {
            Assert.Equal("1", Header(head, "Upload-Defer-Length"));
            Assert.Null(Header(head, "Upload-Length"));
            Assert.Equal("3", Header(head, "Upload-Offset"));
        }

        using (var last = await PatchAsync(user, location, 3, "def"u8.ToArray(), uploadLength: 6))
        {
            Assert.Equal(HttpStatusCode.NoContent, last.StatusCode);
            Assert.Equal("6", Header(last, "Upload-Length"));
        }

        Assert.Equal("abcdef"u8.ToArray(), await FileBytesAsync(user, "stream.log"));
    }

    [Fact]
    public async Task Concatenation_of_partial_uploads_makes_one_file()
    {
        var user = NewUser();
        var a = Names.Bytes(3000, seed: 1);
        var b = Names.Bytes(2000, seed: 2);
        var partials = new List<Uri>();
        foreach (var part in new[] { a, b })
        {
            using var create = Tus(HttpMethod.Post, "/uploads", user);
            create.Headers.Add("Upload-Length", part.Length.ToString());
            create.Headers.Add("Upload-Concat", "partial");
            using var created = await service.Client.SendAsync(create);
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            using var patch = await PatchAsync(user, created.Headers.Location!, 0, part);
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
            partials.Add(created.Headers.Location!);
        }

        Assert.Null(await ListedAsync(user, "joined.bin")); // partials are not files

        using var final = Tus(HttpMethod.Post, "/uploads", user);
        final.Headers.Add("Upload-Concat", $"final;{partials[0]} {partials[1].AbsolutePath}");
        final.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "joined.bin")]));
        using var finalCreated = await service.Client.SendAsync(final);
        Assert.Equal(HttpStatusCode.Created, finalCreated.StatusCode);
        byte[] joined = [.. a, .. b];
        Assert.Equal(joined, await FileBytesAsync(user, "joined.bin"));
        Assert.Equal(Names.Sha256(joined), (await ListedAsync(user, "joined.bin"))!.Sha256);

        using (var head = await service.Client.SendAsync(Tus(HttpMethod.Head, finalCreated.Headers.Location!.AbsolutePath, user)))
        {
            Assert.Equal("5000", Header(head, "Upload-Length"));
            Assert.Equal("5000", Header(head, "Upload-Offset"));
            Assert.StartsWith("final;", Header(head, "Upload-Concat"));
        }

        await AssertProblemAsync(await PatchAsync(user, finalCreated.Headers.Location!, 5000, [1]), HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task Concatenation_of_an_unfinished_partial_is_400()
    {
        var user = NewUser();
        using var create = Tus(HttpMethod.Post, "/uploads", user);
        create.Headers.Add("Upload-Length", "10");
        create.Headers.Add("Upload-Concat", "partial");
        using var created = await service.Client.SendAsync(create);

        using var final = Tus(HttpMethod.Post, "/uploads", user);
        final.Headers.Add("Upload-Concat", $"final;{created.Headers.Location}");
        final.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "x.bin")]));
        await AssertProblemAsync(await service.Client.SendAsync(final), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Concatenation_while_a_partial_is_being_written_is_423_and_works_once_it_is_free()
    {
        var user = NewUser();
        using var create = Tus(HttpMethod.Post, "/uploads", user, "abc"u8.ToArray());
        create.Content!.Headers.ContentType = new MediaTypeHeaderValue(TusProtocol.OffsetContentType);
        create.Headers.Add("Upload-Length", "3");
        create.Headers.Add("Upload-Concat", "partial");
        using var created = await service.Client.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var partialId = created.Headers.Location!.Segments[^1];

        HttpRequestMessage Final()
        {
            var final = Tus(HttpMethod.Post, "/uploads", user);
            final.Headers.Add("Upload-Concat", $"final;{created.Headers.Location}");
            final.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "joined.bin")]));
            return final;
        }

        // Stands for a PATCH or DELETE of the partial that is still running.
        using (service.Services.GetRequiredService<TusLocks>().TryAcquire(partialId))
        {
            using var refused = Final();
            await AssertProblemAsync(await service.Client.SendAsync(refused), (HttpStatusCode)423);
        }

        using var accepted = Final();
        using var response = await service.Client.SendAsync(accepted);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("abc"u8.ToArray(), await FileBytesAsync(user, "joined.bin"));
    }

    [Fact]
    public async Task A_concurrent_patch_is_423_and_the_lock_ends_with_the_request_even_when_it_is_aborted()
    {
        // The whole limit: StallingContent's trickle takes about 100 s to send that much, far longer than the test.
        const int size = (int)UploadServiceFactory.MaxFileBytes;
        var user = NewUser();
        var location = await CreateAsync(user, size, "locked.bin");

        var release = new TaskCompletionSource();
        using var abort = new CancellationTokenSource();
        async Task<Task<HttpResponseMessage>> StartSlowPatch()
        {
            var started = new TaskCompletionSource();
            var slow = Tus(HttpMethod.Patch, location.AbsolutePath, user);
            slow.Headers.Add("Upload-Offset", "0");
            slow.Content = new StallingContent(1000, started, release.Task);
            slow.Content.Headers.ContentType = new MediaTypeHeaderValue(TusProtocol.OffsetContentType);
            slow.Content.Headers.ContentLength = size;
            var sending = service.Client.SendAsync(slow, abort.Token);
            await started.Task.WaitAsync(Deadline);
            return sending;
        }

        var first = await StartSlowPatch();

        // Poll until the server holds the lock (the first bytes have reached the handler).
        var locked = false;
        for (var until = DateTime.UtcNow + LockDeadline; !locked && DateTime.UtcNow < until; await Task.Delay(20))
        {
            if (first.IsCompleted)
            {
                // A probe reached the handler before the slow PATCH did and held the lock for a moment: the slow
                // PATCH got the 423 (or its connection ended with it). Nothing was written; send it again.
                if (first.IsCompletedSuccessfully)
                {
                    using var refused = await first;
                    Assert.Equal(HttpStatusCode.Locked, refused.StatusCode);
                }

                first = await StartSlowPatch();
            }

            // A wrong offset: 423 while the lock is held, else 409, so the probe never writes.
            using var second = await PatchAsync(user, location, size - 1, "x"u8.ToArray());
            locked = second.StatusCode == HttpStatusCode.Locked;
            if (locked)
            {
                await AssertProblemAsync(second, HttpStatusCode.Locked);
            }
        }

        Assert.True(locked, "a second PATCH was not refused while the first was running");
        using (var delete = await service.Client.SendAsync(Tus(HttpMethod.Delete, location.AbsolutePath, user)))
            Assert.Equal(HttpStatusCode.Locked, delete.StatusCode);

        await abort.CancelAsync(); // the client drops the connection mid-body
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        release.SetResult();

        // The lock goes with the request; the bytes that arrived were kept, so resume at HEAD's offset.
        HttpStatusCode status = default;
        for (var until = DateTime.UtcNow + Deadline; status != HttpStatusCode.NoContent && DateTime.UtcNow < until; await Task.Delay(20))
        {
            var offset = await OffsetAsync(user, location);
            using var resumed = await PatchAsync(user, location, offset, Names.Bytes((int)(size - offset)));
            status = resumed.StatusCode;
        }

        Assert.Equal(HttpStatusCode.NoContent, status);
        Assert.Equal(size, (await ListedAsync(user, "locked.bin"))!.Size);
    }

    [Fact]
    public async Task Head_finishes_an_upload_whose_bytes_were_all_stored_before_a_crash()
    {
        var user = NewUser();
        var location = await CreateAsync(user, 5, "crash/late.txt");
        // The last chunk was persisted and moved into the file's blob (the first step of a completion), then
        // the process died before the file record was written: the upload's state still says offset 0.
        var id = location.Segments[^1];
        var bytesPath = Directory.EnumerateFiles(service.StorageRoot, id + ".bin", SearchOption.AllDirectories).Single();
        await File.WriteAllBytesAsync(bytesPath, "12345"u8.ToArray()); // the last chunk, written (a completing append writes no state)
        var blobDirectory = Path.Combine(service.StorageRoot, "users", Names.StoreKey(user), "blobs");
        Directory.CreateDirectory(blobDirectory);
        File.Move(bytesPath, Path.Combine(blobDirectory, $"{Names.StoreKey("crash/late.txt")}.{id}"));
        Assert.Null(await ListedAsync(user, "crash/late.txt"));

        Assert.Equal(5, await OffsetAsync(user, location));
        Assert.Equal("12345"u8.ToArray(), await FileBytesAsync(user, "crash/late.txt"));
        Assert.Equal(5, await OffsetAsync(user, location)); // and again: nothing left to finish
    }

    [Fact]
    public async Task A_finished_upload_stays_finished_and_never_brings_back_its_bytes_over_a_newer_save_or_a_delete()
    {
        var user = NewUser();
        var location = await CreateAsync(user, 5, "later/replaced.txt");
        using (var patch = await PatchAsync(user, location, 0, "first"u8.ToArray()))
            Assert.Equal(HttpStatusCode.NoContent, patch.StatusCode);
        var id = location.Segments[^1];
        var blobDirectory = Path.Combine(service.StorageRoot, "users", Names.StoreKey(user), "blobs");
        var ourBlob = Path.Combine(blobDirectory, $"{Names.StoreKey("later/replaced.txt")}.{id}");
        var ourBytes = await File.ReadAllBytesAsync(ourBlob);

        using (var put = new HttpRequestMessage(HttpMethod.Put, "/files/later/replaced.txt") { Content = new ByteArrayContent("newer"u8.ToArray()) })
        {
            put.Headers.Add("X-User-Id", user);
            using var saved = await service.Client.SendAsync(put);
            Assert.Equal(HttpStatusCode.Created, saved.StatusCode);
        }

        // As after a power loss that kept the newer record but lost the removal of the upload's old blob.
        await File.WriteAllBytesAsync(ourBlob, ourBytes);
        File.SetLastWriteTimeUtc(ourBlob, DateTime.UtcNow.AddMinutes(-1));

        Assert.Equal(5, await OffsetAsync(user, location));
        Assert.Equal("newer"u8.ToArray(), await FileBytesAsync(user, "later/replaced.txt"));
        using (var again = await PatchAsync(user, location, 5, []))
            await AssertProblemAsync(again, HttpStatusCode.Forbidden);

        using (var delete = new HttpRequestMessage(HttpMethod.Delete, "/files/later/replaced.txt"))
        {
            delete.Headers.Add("X-User-Id", user);
            using var deleted = await service.Client.SendAsync(delete);
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        File.Delete(ourBlob);
        Assert.Equal(5, await OffsetAsync(user, location));
        Assert.Null(await ListedAsync(user, "later/replaced.txt"));
    }

    [Fact]
    public async Task A_crash_after_the_last_chunk_was_written_but_before_it_moved_makes_the_client_send_it_again()
    {
        var user = NewUser();
        var location = await CreateAsync(user, 5, "crash/resent.txt");
        // The append that brings the last byte writes no state of its own (the move into the blob records it);
        // the process dies before that move, so the client, which got no 204, resumes from the state's offset.
        var bytesPath = Directory.EnumerateFiles(service.StorageRoot, location.Segments[^1] + ".bin", SearchOption.AllDirectories).Single();
        await File.WriteAllBytesAsync(bytesPath, "xxxxx"u8.ToArray());

        Assert.Equal(0, await OffsetAsync(user, location));
        using var resend = await PatchAsync(user, location, 0, "12345"u8.ToArray());
        Assert.Equal(HttpStatusCode.NoContent, resend.StatusCode);
        Assert.Equal("12345"u8.ToArray(), await FileBytesAsync(user, "crash/resent.txt"));
    }

    [Fact]
    public async Task Creation_with_data_of_another_content_type_is_415()
    {
        using var create = Tus(HttpMethod.Post, "/uploads", NewUser(), "abc"u8.ToArray());
        create.Content!.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
        create.Headers.Add("Upload-Length", "3");
        create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "x.txt")]));
        await AssertProblemAsync(await service.Client.SendAsync(create), HttpStatusCode.UnsupportedMediaType);
    }

    [Fact]
    public async Task State_survives_a_restart_and_bytes_past_the_persisted_offset_are_dropped()
    {
        using var root = new TempDirectory();
        var user = Names.User("restart-user");
        var now = DateTimeOffset.UtcNow;
        var store = new FileSystemFileStore(root.Path).Opened();
        var upload = await store.CreateUploadAsync(user, TusUploads.NewInfo(10, "r.txt", now, "text/plain"), default);
        await upload.AppendAsync(new MemoryStream("abcd"u8.ToArray()), new TusRunningHashes());

        // A crash after writing bytes but before persisting the offset: garbage past offset 4.
        var bytesPath = Directory.EnumerateFiles(root.Path, "*.bin", SearchOption.AllDirectories).Single();
        await File.AppendAllTextAsync(bytesPath, "GARBAGE");

        var reopened = new FileSystemFileStore(root.Path).Opened();
        var state = await reopened.GetUploadAsync(user, UploadId.Stored(upload.Info.Id), default);
        Assert.NotNull(state);
        Assert.Equal(4, state.Info.Offset);

        await state.AppendAsync(new MemoryStream("efghij"u8.ToArray()), new TusRunningHashes());
        Assert.True(state.Info.IsCommitted);
        using var content = await reopened.OpenReadAsync(user, Names.File("r.txt"), default);
        Assert.Equal(Names.Sha256("abcdefghij"u8.ToArray()), content!.File.Sha256);
        Assert.Equal("abcdefghij", await new StreamReader(content.Content).ReadToEndAsync());
    }

    [Fact]
    public async Task A_crash_between_moving_the_bytes_and_writing_the_file_record_loses_nothing()
    {
        using var root = new TempDirectory();
        var user = Names.User("crash-completion");
        var now = DateTimeOffset.UtcNow;
        var store = new FileSystemFileStore(root.Path).Opened();
        var upload = await store.CreateUploadAsync(user, TusUploads.NewInfo(10, "late/file.bin", now), default);

        // What the completing append does before its record switch: write every byte (no state), move the bytes
        // into the blob named after the upload. Then the process dies, so no file record exists yet.
        var bytesPath = Directory.EnumerateFiles(root.Path, "*.bin", SearchOption.AllDirectories).Single();
        await File.WriteAllBytesAsync(bytesPath, "0123456789"u8.ToArray());
        var blobDirectory = Path.Combine(root.Path, "users", Names.StoreKey("crash-completion"), "blobs");
        Directory.CreateDirectory(blobDirectory);
        File.Move(bytesPath, Path.Combine(blobDirectory, $"{Names.StoreKey("late/file.bin")}.{upload.Info.Id}"));

        var reopened = new FileSystemFileStore(root.Path).Opened(); // start-up recovery must keep the claimed blob
        var state = (await reopened.GetUploadAsync(user, UploadId.Stored(upload.Info.Id), default))!;
        Assert.True(state.Info.AwaitsCommit);
        await state.CommitAsync(null, default);

        Assert.True(state.Info.IsCommitted);
        using var content = await reopened.OpenReadAsync(user, Names.File("late/file.bin"), default);
        Assert.Equal(Names.Sha256("0123456789"u8.ToArray()), content!.File.Sha256);
        Assert.Equal("0123456789", await new StreamReader(content.Content).ReadToEndAsync());

    }

    [Fact]
    public async Task The_expiry_sweep_skips_an_upload_that_a_request_is_writing()
    {
        using var root = new TempDirectory();
        var store = new FileSystemFileStore(root.Path).Opened();
        var user = Names.User("sweep-lock");
        var past = DateTimeOffset.UtcNow.AddHours(-2);
        var upload = await store.CreateUploadAsync(user, TusUploads.NewInfo(10, "swept.bin", past), default);
        var id = UploadId.Stored(upload.Info.Id);
        var locks = new TusLocks();

        using (locks.TryAcquire(id.Value))
        {
            Assert.Equal(0, await store.DeleteExpiredUploadsAsync(DateTimeOffset.UtcNow, locks.TryAcquire, default));
            Assert.NotNull(await store.GetUploadAsync(user, id, default));
        }

        Assert.Equal(1, await store.DeleteExpiredUploadsAsync(DateTimeOffset.UtcNow, locks.TryAcquire, default));
        Assert.Null(await store.GetUploadAsync(user, id, default));
    }

    [Fact]
    public async Task Any_split_into_chunks_produces_the_same_file()
    {
        using var root = new TempDirectory();
        var store = new FileSystemFileStore(root.Path).Opened();
        var user = Names.User("chunks");
        var hashes = new TusRunningHashes();
        var random = new Random(42);
        for (var round = 0; round < 20; round++)
        {
            var bytes = Names.Bytes(random.Next(0, 300_000), seed: round);
            var now = DateTimeOffset.UtcNow;
            var upload = await store.CreateUploadAsync(user, TusUploads.NewInfo(bytes.Length, $"f{round}", now), default);
            if (bytes.Length == 0)
            {
                await upload.CommitAsync(null, default); // what the creation of an empty upload does
            }

            while (upload.Info.Offset < bytes.Length)
            {
                var offset = (int)upload.Info.Offset;
                var size = Math.Min(bytes.Length - offset, random.Next(1, 100_000));
                var checksum = round % 2 == 0 ? null : new ChunkChecksum("sha1", SHA1.HashData(bytes.AsSpan(offset, size)));
                await upload.AppendAsync(new MemoryStream(bytes, offset, size), hashes, checksum);
            }

            Assert.True(upload.Info.IsCommitted);
            using var content = await store.OpenReadAsync(user, Names.File($"f{round}"), default);
            Assert.Equal(bytes.Length, content!.File.Size);
            Assert.Equal(Names.Sha256(bytes), content.File.Sha256);
        }
    }

    private static string NewUser() => "tus-" + Guid.NewGuid().ToString("N");

    private static HttpRequestMessage Tus(HttpMethod method, string path, string user, byte[]? body = null, string? version = "1.0.0")
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-User-Id", user);
        if (version is not null)
        {
            request.Headers.Add("Tus-Resumable", version);
        }

        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue(TusProtocol.OffsetContentType);
        }

        return request;
    }

    private async Task<Uri> CreateAsync(string user, long length, string filename, string? filetype = null, (string Host, string Proto)? forwarded = null)
    {
        using var request = Tus(HttpMethod.Post, "/uploads", user);
        request.Headers.Add("Upload-Length", length.ToString());
        var metadata = new List<KeyValuePair<string, string>> { new("filename", filename) };
        if (filetype is not null)
        {
            metadata.Add(new("filetype", filetype));
        }

        request.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata(metadata));
        if (forwarded is { } origin)
        {
            request.Headers.Add("X-Forwarded-Host", origin.Host);
            request.Headers.Add("X-Forwarded-Proto", origin.Proto);
        }

        using var response = await service.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("1.0.0", Header(response, "Tus-Resumable"));
        return response.Headers.Location!;
    }

    private Task<HttpResponseMessage> PatchAsync(string user, Uri location, long offset, byte[] chunk, string? checksum = null, long? uploadLength = null)
    {
        var request = Tus(HttpMethod.Patch, location.AbsolutePath, user, chunk);
        request.Headers.Add("Upload-Offset", offset.ToString());
        if (checksum is not null)
        {
            request.Headers.Add("Upload-Checksum", checksum);
        }

        if (uploadLength is not null)
        {
            request.Headers.Add("Upload-Length", uploadLength.ToString());
        }

        return service.Client.SendAsync(request);
    }

    private async Task<long> OffsetAsync(string user, Uri location)
    {
        using var head = await service.Client.SendAsync(Tus(HttpMethod.Head, location.AbsolutePath, user));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        return long.Parse(Header(head, "Upload-Offset")!);
    }

    private async Task<StoredFileView?> ListedAsync(string user, string name)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/files?prefix=" + Uri.EscapeDataString(name));
        request.Headers.Add("X-User-Id", user);
        using var response = await service.Client.SendAsync(request);
        var list = await response.Content.ReadFromJsonAsync<FileListView>();
        return list!.Files.SingleOrDefault(file => file.Name == name);
    }

    private async Task<byte[]> FileBytesAsync(string user, string name)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/files/" + name);
        request.Headers.Add("X-User-Id", user);
        using var response = await service.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsByteArrayAsync();
    }

    internal static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? string.Join(",", values)
            : null;

    internal static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(expected == response.StatusCode, $"expected {(int)expected}, got {(int)response.StatusCode}: {body}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal("1.0.0", Header(response, "Tus-Resumable"));
        }
    }

    private static byte[] Digest(string algorithm, byte[] data) => algorithm switch
    {
        "sha1" => SHA1.HashData(data),
        "sha256" => SHA256.HashData(data),
        _ => MD5.HashData(data),
    };

    private sealed record StoredFileView(string Name, long Size, string Sha256, string ContentType);

    private sealed record FileListView(List<StoredFileView> Files);

    private sealed class TempDirectoryView(string path)
    {
        public IEnumerable<string> AllFiles() => Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories);
    }
}

/// <summary>Expiration with a short Tus:Expiration: 410 while expired, then the background sweep deletes it (404).</summary>
public sealed class TusExpirationTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    private readonly UploadServiceFactory _expiring = UploadServiceFactory.WithSettings(new Dictionary<string, string>
    {
        ["Tus:Expiration"] = "00:00:01",
        ["Tus:SweepInterval"] = "01:00:00",
    });

    private readonly UploadServiceFactory _swept = UploadServiceFactory.WithSettings(new Dictionary<string, string>
    {
        ["Tus:Expiration"] = "00:00:01",
        ["Tus:SweepInterval"] = "00:00:00.200",
    });

    [Fact]
    public async Task An_expired_upload_is_410_and_advertises_Upload_Expires()
    {
        var (location, expires) = await CreateAsync(_expiring.Client);
        Assert.True(DateTimeOffset.Parse(expires) <= DateTimeOffset.UtcNow.AddSeconds(2));
        var status = await PollHeadAsync(_expiring.Client, location, HttpStatusCode.Gone);
        Assert.Equal(HttpStatusCode.Gone, status);

        using var patch = new HttpRequestMessage(HttpMethod.Patch, location) { Content = new ByteArrayContent([1]) };
        patch.Headers.Add("X-User-Id", "exp");
        patch.Headers.Add("Tus-Resumable", "1.0.0");
        patch.Headers.Add("Upload-Offset", "0");
        patch.Content.Headers.ContentType = new MediaTypeHeaderValue(TusProtocol.OffsetContentType);
        await TusApiTests.AssertProblemAsync(await _expiring.Client.SendAsync(patch), HttpStatusCode.Gone);
    }

    [Fact]
    public async Task The_background_sweep_deletes_expired_uploads()
    {
        var (location, _) = await CreateAsync(_swept.Client);
        Assert.Equal(HttpStatusCode.NotFound, await PollHeadAsync(_swept.Client, location, HttpStatusCode.NotFound));
        Assert.Empty(Directory.EnumerateFiles(_swept.StorageRoot, "*.bin", SearchOption.AllDirectories));
    }

    private static async Task<(string Location, string Expires)> CreateAsync(HttpClient client)
    {
        using var create = new HttpRequestMessage(HttpMethod.Post, "/uploads");
        create.Headers.Add("X-User-Id", "exp");
        create.Headers.Add("Tus-Resumable", "1.0.0");
        create.Headers.Add("Upload-Length", "10");
        create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "e.bin")]));
        using var created = await client.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return (created.Headers.Location!.AbsolutePath, TusApiTests.Header(created, "Upload-Expires")!);
    }

    private static async Task<HttpStatusCode> PollHeadAsync(HttpClient client, string location, HttpStatusCode wanted)
    {
        HttpStatusCode status = default;
        for (var until = DateTime.UtcNow + Deadline; status != wanted && DateTime.UtcNow < until; await Task.Delay(100))
        {
            using var head = new HttpRequestMessage(HttpMethod.Head, location);
            head.Headers.Add("X-User-Id", "exp");
            head.Headers.Add("Tus-Resumable", "1.0.0");
            using var response = await client.SendAsync(head);
            status = response.StatusCode;
        }

        return status;
    }

    public void Dispose()
    {
        _expiring.Dispose();
        _swept.Dispose();
    }
}
