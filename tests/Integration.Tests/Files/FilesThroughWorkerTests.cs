using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;

namespace Integration.Tests;

[Collection(AppCollection.Name)]
public sealed class FilesThroughWorkerTests(AppFixture app)
{
    private static readonly TimeSpan CleanupDeadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Put_get_head_list_delete_round_trip_through_worker()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("alice"));
        var bytes = TestContent.RandomBytes(3 * 1024 * 1024 + 17);
        var sha = TestContent.Sha256Hex(bytes);

        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        using var put = await client.PutAsync("/files/photos/2026/cat.png", content);
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        var stored = (await put.Content.ReadFromJsonAsync<StoredFile>())!;
        Assert.Equal("photos/2026/cat.png", stored.Name);
        Assert.Equal(bytes.Length, stored.Size);
        Assert.Equal(sha, stored.Sha256);
        Assert.Equal("image/png", stored.ContentType);

        using var get = await client.GetAsync("/files/photos/2026/cat.png");
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(sha, TestContent.Sha256Hex(await get.Content.ReadAsByteArrayAsync()));
        Assert.Equal("image/png", get.Content.Headers.ContentType?.MediaType);
        Assert.Equal($"\"{sha}\"", get.Headers.ETag?.Tag);

        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/files/photos/2026/cat.png"));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(bytes.Length, head.Content.Headers.ContentLength);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());

        var listed = await TestContent.ListAsync(client, "photos/");
        var item = Assert.Single(listed.Files);
        Assert.Equal(stored.Name, item.Name);
        Assert.Equal(sha, item.Sha256);

        using var delete = await client.DeleteAsync("/files/photos/2026/cat.png");
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using var gone = await client.GetAsync("/files/photos/2026/cat.png");
        await TestContent.AssertProblemAsync(gone, HttpStatusCode.NotFound);
        Assert.Empty((await TestContent.ListAsync(client)).Files);
    }

    [Fact]
    public async Task Put_replaces_an_existing_file()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("alice"));
        var first = TestContent.RandomBytes(1000);
        var second = TestContent.RandomBytes(2000);

        using (var put1 = await client.PutAsync("/files/notes.txt", new ByteArrayContent(first)))
            Assert.Equal(HttpStatusCode.Created, put1.StatusCode);
        using (var put2 = await client.PutAsync("/files/notes.txt", new ByteArrayContent(second)))
            Assert.Equal(HttpStatusCode.Created, put2.StatusCode);

        Assert.Equal(second, await client.GetByteArrayAsync("/files/notes.txt"));
        Assert.Single((await TestContent.ListAsync(client)).Files);
    }

    [Fact]
    public async Task Multipart_upload_of_two_files_round_trips()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("alice"));
        var a = TestContent.RandomBytes(256 * 1024);
        var b = TestContent.RandomBytes(5 * 1024 * 1024 + 3);

        using var form = new MultipartFormDataContent();
        var partA = new ByteArrayContent(a);
        partA.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
        form.Add(partA, "file", "a.txt");
        form.Add(new ByteArrayContent(b), "file", "b.bin");

        using var post = await client.PostAsync("/files", form);
        Assert.Equal(HttpStatusCode.Created, post.StatusCode);
        var result = (await post.Content.ReadFromJsonAsync<MultipartResult>())!;
        Assert.Equal(["a.txt", "b.bin"], result.Files.Select(f => f.Name).Order());
        Assert.Equal(TestContent.Sha256Hex(a), result.Files.Single(f => f.Name == "a.txt").Sha256);
        Assert.Equal("text/plain", result.Files.Single(f => f.Name == "a.txt").ContentType);

        Assert.Equal(a, await client.GetByteArrayAsync("/files/a.txt"));
        Assert.Equal(b, await client.GetByteArrayAsync("/files/b.bin"));
    }

    [Fact]
    public async Task Range_request_returns_the_requested_bytes()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("alice"));
        var bytes = TestContent.RandomBytes(10_000);
        using (var put = await client.PutAsync("/files/range.bin", new ByteArrayContent(bytes)))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);

        using var request = new HttpRequestMessage(HttpMethod.Get, "/files/range.bin");
        request.Headers.Range = new RangeHeaderValue(100, 199);
        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        Assert.Equal(bytes[100..200], await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(100, response.Content.Headers.ContentRange?.From);
        Assert.Equal(bytes.Length, response.Content.Headers.ContentRange?.Length);

        using var unsatisfiable = new HttpRequestMessage(HttpMethod.Get, "/files/range.bin");
        unsatisfiable.Headers.Range = new RangeHeaderValue(20_000, 20_100);
        using var tooFar = await client.SendAsync(unsatisfiable);
        Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, tooFar.StatusCode);
    }

    [Fact]
    public async Task Users_cannot_see_read_or_delete_each_others_files()
    {
        using var alice = app.CreateWorkerClient(TestContent.UniqueUser("alice"));
        using var bob = app.CreateWorkerClient(TestContent.UniqueUser("bob"));
        var bytes = TestContent.RandomBytes(4096);
        using (var put = await alice.PutAsync("/files/secret.txt", new ByteArrayContent(bytes)))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);

        using (var read = await bob.GetAsync("/files/secret.txt"))
            await TestContent.AssertProblemAsync(read, HttpStatusCode.NotFound);
        using (var delete = await bob.DeleteAsync("/files/secret.txt"))
            await TestContent.AssertProblemAsync(delete, HttpStatusCode.NotFound);
        Assert.Empty((await TestContent.ListAsync(bob)).Files);

        // A client-supplied X-User-Id must not switch the namespace: the Worker sets it from the token.
        using var spoof = new HttpRequestMessage(HttpMethod.Get, "/files/secret.txt");
        spoof.Headers.Add("X-User-Id", "alice");
        using (var spoofed = await bob.SendAsync(spoof))
            await TestContent.AssertProblemAsync(spoofed, HttpStatusCode.NotFound);

        Assert.Equal(bytes, await alice.GetByteArrayAsync("/files/secret.txt"));
    }

    [Theory]
    [InlineData("/files/a%5Cb.txt")]            // backslash
    [InlineData("/files/a%00b.txt")]            // NUL
    [InlineData("/files/a%01b.txt")]            // control character
    [InlineData("/files/dir//b.txt")]           // empty segment
    [InlineData("/files/dir/")]                 // trailing slash
    [InlineData("/files/..%5Cescape.txt")]      // traversal with a backslash
    public async Task Bad_names_are_rejected_and_nothing_is_written(string path)
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("mallory"));
        using var request = new HttpRequestMessage(HttpMethod.Put, new Uri(app.WorkerUrl, path))
        {
            Content = new ByteArrayContent(TestContent.RandomBytes(1024)),
        };
        using var response = await client.SendAsync(request);

        await TestContent.AssertProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.Empty((await TestContent.ListAsync(client)).Files);
    }

    [Fact]
    public async Task Overlong_name_is_rejected()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("mallory"));
        using var response = await client.PutAsync("/files/" + new string('a', 5000), new ByteArrayContent([1, 2, 3]));
        await TestContent.AssertProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.Empty((await TestContent.ListAsync(client)).Files);
    }

    [Fact]
    public async Task Aborted_upload_leaves_no_file_and_the_service_stays_healthy()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("alice"));

        using var request = new HttpRequestMessage(HttpMethod.Put, "/files/half.bin")
        {
            Content = new AbortingContent(declaredLength: 64L * 1024 * 1024, bytesBeforeAbort: 8 * 1024 * 1024),
        };
        await Assert.ThrowsAnyAsync<Exception>(() => client.SendAsync(request));

        // The service notices the cut connection on its own schedule: poll until no temp file is left.
        var deadline = DateTime.UtcNow + CleanupDeadline;
        while (app.InFlightUploadFiles().Length > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
        }
        Assert.Empty(app.InFlightUploadFiles());

        using (var get = await client.GetAsync("/files/half.bin"))
            await TestContent.AssertProblemAsync(get, HttpStatusCode.NotFound);
        Assert.Empty((await TestContent.ListAsync(client)).Files);

        var bytes = TestContent.RandomBytes(1024);
        using (var put = await client.PutAsync("/files/after.bin", new ByteArrayContent(bytes)))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        Assert.Equal(bytes, await client.GetByteArrayAsync("/files/after.bin"));
    }
}
