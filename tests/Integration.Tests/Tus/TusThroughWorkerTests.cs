using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;

namespace Integration.Tests;

/// <summary>tus 1.0.0 through the Worker and the Durable Object (which forwards PATCH as POST + X-HTTP-Method-Override).</summary>
[Collection(AppCollection.Name)]
public sealed class TusThroughWorkerTests(AppFixture app)
{
    private static readonly TimeSpan RestartTimeout = Faults.RestartTimeout;
    private const int MiB = 1 << 20;

    [Fact]
    public async Task Options_through_the_worker_advertises_the_server()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("tus"));
        using var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Options, "/uploads"));
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal("1.0.0", Tus.Header(response, "Tus-Version"));
        Assert.Equal("creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation",
            Tus.Header(response, "Tus-Extension"));
        Assert.Equal((5L << 30).ToString(), Tus.Header(response, "Tus-Max-Size"));
        Assert.Equal("sha1,sha256,md5", Tus.Header(response, "Tus-Checksum-Algorithm"));
    }

    [Fact]
    public async Task Chunked_upload_through_the_worker_becomes_a_file_with_a_public_location()
    {
        var user = TestContent.UniqueUser("tus");
        using var client = app.CreateWorkerClient(user);
        var bytes = TestContent.RandomBytes(3 * MiB + 123);
        var location = await Tus.CreateAsync(client, bytes.Length, "tus/photo.jpg", "image/jpeg");
        Assert.Equal(app.WorkerUrl.Authority, location.Authority); // the Worker's origin, never the container's
        Assert.StartsWith("/uploads/", location.AbsolutePath);

        using (var first = await Tus.PatchAsync(client, location, 0, new ByteArrayContent(bytes[..(2 * MiB)])))
        {
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
            Assert.Equal((2 * MiB).ToString(), Tus.Header(first, "Upload-Offset"));
        }

        Assert.Equal(2 * MiB, await Tus.OffsetAsync(client, location));
        using (var rest = await Tus.PatchAsync(client, location, 2 * MiB, new ByteArrayContent(bytes[(2 * MiB)..])))
            Assert.Equal(HttpStatusCode.NoContent, rest.StatusCode);

        var stored = Assert.Single((await TestContent.ListAsync(client, "tus/")).Files);
        Assert.Equal("tus/photo.jpg", stored.Name);
        Assert.Equal(TestContent.Sha256Hex(bytes), stored.Sha256);
        Assert.Equal("image/jpeg", stored.ContentType);
        Assert.Equal(bytes, await client.GetByteArrayAsync("/files/tus/photo.jpg"));
    }

    [Fact]
    public async Task Protocol_errors_through_the_worker_are_problems_with_Tus_Resumable()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("tus"));
        var location = await Tus.CreateAsync(client, 10, "errors.bin");

        // 412: no Tus-Resumable
        using (var noVersion = new HttpRequestMessage(HttpMethod.Head, location.PathAndQuery))
        using (var response = await client.SendAsync(noVersion))
        {
            Assert.Equal(HttpStatusCode.PreconditionFailed, response.StatusCode);
            Assert.Equal("1.0.0", Tus.Header(response, "Tus-Version"));
        }

        // 415: wrong content type
        using (var wrongType = Tus.Request(HttpMethod.Patch, location.PathAndQuery, new ByteArrayContent([1, 2])))
        {
            wrongType.Content!.Headers.ContentType = new("application/octet-stream");
            wrongType.Headers.Add("Upload-Offset", "0");
            await AssertTusProblemAsync(await client.SendAsync(wrongType), HttpStatusCode.UnsupportedMediaType);
        }

        // 409: offset mismatch
        await AssertTusProblemAsync(await Tus.PatchAsync(client, location, 5, new ByteArrayContent([1])), HttpStatusCode.Conflict);

        // 460: checksum mismatch, chunk discarded
        await AssertTusProblemAsync(
            await Tus.PatchAsync(client, location, 0, new ByteArrayContent([1, 2, 3]), $"sha1 {Convert.ToBase64String(SHA1.HashData(new byte[] { 9 }))}"),
            (HttpStatusCode)460);
        Assert.Equal(0, await Tus.OffsetAsync(client, location));
        using (var ok = await Tus.PatchAsync(client, location, 0, new ByteArrayContent([1, 2, 3]), $"sha256 {Convert.ToBase64String(SHA256.HashData(new byte[] { 1, 2, 3 }))}"))
            Assert.Equal(HttpStatusCode.NoContent, ok.StatusCode);

        // 413: past Upload-Length, and over Tus-Max-Size at creation
        await AssertTusProblemAsync(await Tus.PatchAsync(client, location, 3, new ByteArrayContent(new byte[8])), HttpStatusCode.RequestEntityTooLarge);
        using (var huge = Tus.Request(HttpMethod.Post, "/uploads"))
        {
            huge.Headers.Add("Upload-Length", ((5L << 30) + 1).ToString());
            huge.Headers.Add("Upload-Metadata", Tus.Metadata("huge.bin"));
            await AssertTusProblemAsync(await client.SendAsync(huge), HttpStatusCode.RequestEntityTooLarge);
        }

        // 404: unknown upload, and another user's upload
        await AssertTusProblemAsync(await Tus.PatchAsync(client, new Uri(location, "/uploads/0123456789abcdef0123456789abcdef"), 0, new ByteArrayContent([1])), HttpStatusCode.NotFound);
        using var stranger = app.CreateWorkerClient(TestContent.UniqueUser("stranger"));
        await AssertTusProblemAsync(await Tus.PatchAsync(stranger, location, 3, new ByteArrayContent([1])), HttpStatusCode.NotFound);

        // termination: 204, then 404
        using (var delete = await client.SendAsync(Tus.Request(HttpMethod.Delete, location.PathAndQuery)))
        {
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
            Assert.Equal("1.0.0", Tus.Header(delete, "Tus-Resumable"));
        }

        using (var head = await client.SendAsync(Tus.Request(HttpMethod.Head, location.PathAndQuery)))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        Assert.Empty((await TestContent.ListAsync(client)).Files);
    }

    [Fact]
    public async Task Deferred_length_upload_through_the_worker()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("tus"));
        using var create = Tus.Request(HttpMethod.Post, "/uploads");
        create.Headers.Add("Upload-Defer-Length", "1");
        create.Headers.Add("Upload-Metadata", Tus.Metadata("deferred.txt"));
        using var created = await client.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var location = created.Headers.Location!;

        using (var first = await Tus.PatchAsync(client, location, 0, new StringContent("hello ")))
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        using (var head = await client.SendAsync(Tus.Request(HttpMethod.Head, location.PathAndQuery)))
            Assert.Equal("1", Tus.Header(head, "Upload-Defer-Length"));

        using var last = Tus.Request(HttpMethod.Patch, location.PathAndQuery, new StringContent("world"));
        last.Headers.Add("Upload-Offset", "6");
        last.Headers.Add("Upload-Length", "11");
        using (var response = await client.SendAsync(last))
            Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal("hello world", await client.GetStringAsync("/files/deferred.txt"));
    }

    [Fact]
    public async Task A_concurrent_patch_through_the_worker_is_423_never_interleaved()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("tus"));
        var bytes = new SeededBytes(8 * MiB, seed: 7);
        var location = await Tus.CreateAsync(client, bytes.Length, "locked.bin");

        var stalled = new TaskCompletionSource();
        var resume = new TaskCompletionSource();
        var first = Tus.PatchAsync(client, location, 0, bytes.Range(0, bytes.Length, stallAfter: 2 * MiB, stalled, resume.Task));
        await stalled.Task.WaitAsync(RestartTimeout);
        // Probe only once the first PATCH is writing at the service: a probe that got there first would hold
        // the lock for a moment and have the first PATCH refused instead.
        await TestContent.WaitUntilAsync(() => app.TusUploadBytesOnDisk(location) > 0, "the first PATCH is being written at the service");

        var refused = false;
        var seen = new List<string>();
        for (var until = DateTime.UtcNow + TimeSpan.FromSeconds(30); !refused && DateTime.UtcNow < until; await Task.Delay(50))
        {
            try
            {
                // A wrong offset: 423 while the lock is held, else 409, so the probe never writes.
                using var second = await Tus.PatchAsync(client, location, bytes.Length - 1, new ByteArrayContent([1]));
                refused = second.StatusCode == HttpStatusCode.Locked;
                seen.Add($"{(int)second.StatusCode} {await second.Content.ReadAsStringAsync()}");
            }
            catch (HttpRequestException ex)
            {
                seen.Add(ex.Message);
            }
        }

        Assert.True(refused, "a second PATCH was not refused with 423 while the first was running: " + string.Join(" | ", seen.Distinct()));
        resume.SetResult(); // the first client breaks its connection
        await Assert.ThrowsAnyAsync<Exception>(() => first);

        // The lock ends with the broken request; the upload resumes from what is on disk. Until the service
        // has seen the break, a retry gets 423 before its body is read (the connection may then be reset,
        // as tus clients expect: they retry).
        HttpStatusCode status = default;
        for (var until = DateTime.UtcNow + TimeSpan.FromSeconds(30); status != HttpStatusCode.NoContent && DateTime.UtcNow < until; await Task.Delay(100))
        {
            var offset = await Tus.OffsetAsync(client, location);
            try
            {
                using var rest = await Tus.PatchAsync(client, location, offset, bytes.Range(offset, bytes.Length - offset));
                status = rest.StatusCode;
            }
            catch (HttpRequestException)
            {
            }
        }

        Assert.Equal(HttpStatusCode.NoContent, status);
        var stored = Assert.Single((await TestContent.ListAsync(client)).Files);
        Assert.Equal(bytes.Sha256Hex(), stored.Sha256);
    }

    [Fact]
    public async Task Killing_the_upload_service_mid_patch_then_resuming_gives_an_intact_file()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("tus"));
        var bytes = new SeededBytes(24 * MiB + 5, seed: 11);
        var location = await Tus.CreateAsync(client, bytes.Length, "restart.bin");
        using (var first = await Tus.PatchAsync(client, location, 0, bytes.Range(0, 4 * MiB)))
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);

        // A PATCH is streaming (10 MiB sent of 20) when the service is restarted under it.
        var stalled = new TaskCompletionSource();
        var resume = new TaskCompletionSource();
        var interrupted = Tus.PatchAsync(client, location, 4 * MiB, bytes.Range(4 * MiB, 20 * MiB, stallAfter: 10 * MiB, stalled, resume.Task));
        await stalled.Task.WaitAsync(RestartTimeout);

        await app.KillAndStartUploadServiceAsync();
        resume.SetResult();
        try { (await interrupted).Dispose(); } catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException) { }

        // Whatever HEAD reports is on disk; resume from there to the end.
        var offset = await Tus.OffsetAsync(client, location);
        Assert.InRange(offset, 4 * MiB, 14 * MiB);
        using (var rest = await Tus.PatchAsync(client, location, offset, bytes.Range(offset, bytes.Length - offset)))
            Assert.Equal(HttpStatusCode.NoContent, rest.StatusCode);

        var stored = Assert.Single((await TestContent.ListAsync(client)).Files);
        Assert.Equal(bytes.Length, stored.Size);
        Assert.Equal(bytes.Sha256Hex(), stored.Sha256);
        using var get = await client.GetAsync("/files/restart.bin", HttpCompletionOption.ResponseHeadersRead);
        await using var body = await get.Content.ReadAsStreamAsync();
        Assert.Equal(stored.Sha256, Convert.ToHexStringLower(await SHA256.HashDataAsync(body)));
    }

    [Fact]
    public async Task Two_GiB_in_50_MiB_chunks_through_the_worker_under_a_128_MiB_heap_limit()
    {
        const long TwoGiB = 2L << 30;
        const int ChunkSize = 50 * MiB;
        await app.AssertHeapLimitInEffectAsync();
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("tus-big"));
        var bytes = new SeededBytes(TwoGiB, seed: 2);
        var location = await Tus.CreateAsync(client, TwoGiB, "big/two-gib.bin");

        var started = System.Diagnostics.Stopwatch.StartNew();
        for (long offset = 0; offset < TwoGiB; offset += ChunkSize)
        {
            var count = Math.Min(ChunkSize, TwoGiB - offset);
            using var patch = await Tus.PatchAsync(client, location, offset, bytes.Range(offset, count));
            Assert.True(patch.StatusCode == HttpStatusCode.NoContent, $"PATCH at {offset}: {(int)patch.StatusCode} {await patch.Content.ReadAsStringAsync()}");
            Assert.Equal((offset + count).ToString(), Tus.Header(patch, "Upload-Offset"));
        }

        var elapsed = started.Elapsed;
        var stored = Assert.Single((await TestContent.ListAsync(client, "big/")).Files);
        Assert.Equal(TwoGiB, stored.Size);
        Assert.Equal(bytes.Sha256Hex(), stored.Sha256);
        Console.WriteLine($"2 GiB in 50 MiB chunks through the Worker: {elapsed.TotalSeconds:F1} s");

        using var delete = await client.DeleteAsync("/files/big/two-gib.bin");
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
    }

    private static async Task AssertTusProblemAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        using (response)
        {
            await TestContent.AssertProblemAsync(response, expected);
            Assert.Equal("1.0.0", Tus.Header(response, "Tus-Resumable"));
        }
    }
}

/// <summary>The official tus-js-client (npm), run by Node, uploading through the Worker.</summary>
[Collection(AppCollection.Name)]
public sealed class TusJsClientTests(AppFixture app)
{
    private const int MiB = 1 << 20;

    [Fact]
    public async Task Tus_js_client_uploads_in_several_chunks()
    {
        var result = await UploadAsync("chunks", 5 * MiB + 11, chunkSize: MiB);
        Assert.True(result.GetProperty("patches").GetInt32() >= 6);
    }

    [Fact]
    public async Task Tus_js_client_resumes_an_aborted_upload_from_its_stored_url_in_a_new_instance()
    {
        var result = await UploadAsync("resume", 4 * MiB + 3, chunkSize: MiB);
        Assert.Equal(result.GetProperty("firstUrl").GetString(), result.GetProperty("uploadUrl").GetString());
        Assert.True(result.GetProperty("resumedFrom").GetInt64() >= MiB, result.ToString());
    }

    [Fact]
    public async Task Tus_js_client_parallel_uploads_are_concatenated()
    {
        var result = await UploadAsync("parallel", 6 * MiB + 7, chunkSize: MiB);

        // Three partial uploads and one final upload that concatenates them, each created (201): the file above
        // came out of the concatenation, not out of a plain upload the client fell back to.
        var creations = result.GetProperty("creations").EnumerateArray()
            .Select(c => (Concat: c.GetProperty("concat").GetString()!, Status: c.GetProperty("status").GetInt32()))
            .ToList();
        Assert.Equal(3, creations.Count(c => c is { Concat: "partial", Status: 201 }));
        var final = Assert.Single(creations, c => c.Concat.StartsWith("final;", StringComparison.Ordinal));
        Assert.Equal(201, final.Status);
        Assert.Equal(3, final.Concat["final;".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Equal(4, creations.Count);
    }

    private async Task<JsonElement> UploadAsync(string mode, int size, int chunkSize)
    {
        var user = TestContent.UniqueUser("tusjs");
        var bytes = TestContent.RandomBytes(size);
        var directory = Path.Combine(Path.GetTempPath(), "tus-js-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        try
        {
            var path = Path.Combine(directory, "source.bin");
            await File.WriteAllBytesAsync(path, bytes);
            var name = $"js/{mode}.bin";
            var run = await TusJsClient.RunAsync(
                UserTokens.Create(app.AuthSecret, user, TimeSpan.FromHours(1)),
                mode, new Uri(app.WorkerUrl, "/uploads").ToString(), path, name, chunkSize.ToString(), Path.Combine(directory, "urls.json"));
            Assert.True(run.ExitCode == 0, $"tus-js-client exited with {run.ExitCode}:\n{run.Stdout}\n{run.Stderr}");

            var result = JsonDocument.Parse(run.Stdout.Trim().Split('\n')[^1]).RootElement.Clone();
            Assert.StartsWith(new Uri(app.WorkerUrl, "/uploads/").ToString(), result.GetProperty("uploadUrl").GetString());

            using var client = app.CreateWorkerClient(user);
            var stored = Assert.Single((await TestContent.ListAsync(client)).Files);
            Assert.Equal(name, stored.Name);
            Assert.Equal(size, stored.Size);
            Assert.Equal(TestContent.Sha256Hex(bytes), stored.Sha256);
            Assert.Equal(bytes, await client.GetByteArrayAsync("/files/" + name));
            return result;
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
