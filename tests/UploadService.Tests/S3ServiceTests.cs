using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using UploadService.Storage;
using UploadService.Tus;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

/// <summary>The real service with <c>Storage:Provider=s3</c>, over HTTP, against the local S3-compatible server.</summary>
[Collection(S3ServerCollection.Name)]
public sealed class S3ServiceTests(S3Server server) : IAsyncLifetime
{
    private string _bucket = "";
    private UploadServiceFactory? _service;

    private HttpClient Client => _service!.Client;

    public async Task InitializeAsync()
    {
        _bucket = await server.CreateBucketAsync();
        _service = UploadServiceFactory.WithSettings(Settings());
    }

    private Dictionary<string, string> Settings() => server.ServiceSettings(_bucket);

    public async Task DisposeAsync() => await _service!.DisposeAsync();

    [Fact]
    public async Task A_file_limit_over_ten_thousand_parts_stops_the_service_at_start()
    {
        var settings = Settings();
        settings["Storage:S3:PartSizeBytes"] = S3StoreOptions.MinPartSizeBytes.ToString();
        settings["Upload:MaxFileBytes"] = (S3StoreOptions.MinPartSizeBytes * S3StoreOptions.MaxParts + 1).ToString();
        await using var tooLarge = UploadServiceFactory.WithSettings(settings);

        var error = Assert.ThrowsAny<Exception>(() => tooLarge.Client);

        Assert.Contains("raise Storage:S3:PartSizeBytes or lower Upload:MaxFileBytes", error.ToString());
        settings["Upload:MaxFileBytes"] = (S3StoreOptions.MinPartSizeBytes * S3StoreOptions.MaxParts).ToString();
        await using var atTheLimit = UploadServiceFactory.WithSettings(settings);
        using var health = await atTheLimit.Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Put_get_range_list_and_delete_go_to_the_bucket()
    {
        var bytes = Bytes(50_000);

        using (var put = await Client.SendAsync(Request(HttpMethod.Put, "/files/docs/a.bin", "alice", bytes)))
        {
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        }

        Assert.Equal(2, (await server.KeysAsync(_bucket)).Count);
        Assert.Empty(Directory.EnumerateFiles(_service!.StorageRoot, "*", SearchOption.AllDirectories));

        using (var get = await Client.SendAsync(Request(HttpMethod.Get, "/files/docs/a.bin", "alice")))
        {
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
            Assert.Equal(bytes, await get.Content.ReadAsByteArrayAsync());
            Assert.Equal($"\"{Sha256(bytes)}\"", get.Headers.ETag?.Tag);
        }

        using (var ranged = Request(HttpMethod.Get, "/files/docs/a.bin", "alice"))
        {
            ranged.Headers.Range = new RangeHeaderValue(40_000, 40_099);
            using var response = await Client.SendAsync(ranged);
            Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
            Assert.Equal(bytes.AsSpan(40_000, 100).ToArray(), await response.Content.ReadAsByteArrayAsync());
        }

        using (var list = await Client.SendAsync(Request(HttpMethod.Get, "/files?prefix=docs/", "alice")))
        {
            var body = await list.Content.ReadFromJsonAsync<Listing>();
            Assert.Equal("docs/a.bin", Assert.Single(body!.Files).Name);
        }

        using (var delete = await Client.SendAsync(Request(HttpMethod.Delete, "/files/docs/a.bin", "alice")))
        {
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        }

        Assert.Empty(await server.KeysAsync(_bucket));
    }

    [Fact]
    public async Task A_tus_upload_in_chunks_becomes_a_file_in_the_bucket()
    {
        var bytes = Bytes(40_000, seed: 5);
        using var create = Request(HttpMethod.Post, "/uploads", "alice");
        create.Headers.Add("Tus-Resumable", "1.0.0");
        create.Headers.Add("Upload-Length", bytes.Length.ToString());
        create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "big/b.bin"), new("filetype", "video/mp4")]));
        using var created = await Client.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var location = created.Headers.Location!.AbsolutePath;

        foreach (var (offset, length) in new[] { (0, 15_000), (15_000, 25_000) })
        {
            using var patch = Request(HttpMethod.Patch, location, "alice", bytes.AsSpan(offset, length).ToArray());
            patch.Headers.Add("Tus-Resumable", "1.0.0");
            patch.Headers.Add("Upload-Offset", offset.ToString());
            patch.Content!.Headers.ContentType = new MediaTypeHeaderValue("application/offset+octet-stream");
            using var response = await Client.SendAsync(patch);
            Assert.True(response.StatusCode == HttpStatusCode.NoContent,
                $"PATCH at {offset}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        using (var get = await Client.SendAsync(Request(HttpMethod.Get, "/files/big/b.bin", "alice")))
        {
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
            Assert.Equal("video/mp4", get.Content.Headers.ContentType?.MediaType);
            Assert.Equal(bytes, await get.Content.ReadAsByteArrayAsync());
        }

        // The file's record and bytes, and the finished upload's state (kept until it expires); nothing on disk.
        Assert.Equal(3, (await server.KeysAsync(_bucket)).Count);
        Assert.Empty(Directory.EnumerateFiles(_service!.StorageRoot, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task A_fresh_container_with_an_empty_disk_serves_the_files_and_resumes_the_unfinished_upload()
    {
        var file = Bytes(30_000, seed: 7);
        var upload = Bytes(40_000, seed: 8);
        using (var put = await Client.SendAsync(Request(HttpMethod.Put, "/files/kept.bin", "alice", file)))
        {
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        }

        var location = await CreateUploadAsync(upload.Length, "resumed.bin");
        using (var first = await Client.SendAsync(Patch(location, 0, upload[..25_000])))
        {
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        }

        // The container sleeps; the next one starts with a new, empty disk and the same bucket.
        var settings = Settings();
        await _service!.DisposeAsync();
        _service = UploadServiceFactory.WithSettings(settings);

        using (var list = await Client.SendAsync(Request(HttpMethod.Get, "/files", "alice")))
        {
            Assert.Equal(["kept.bin"], (await list.Content.ReadFromJsonAsync<Listing>())!.Files.Select(f => f.Name));
        }

        using (var head = Request(HttpMethod.Head, location, "alice"))
        {
            head.Headers.Add("Tus-Resumable", "1.0.0");
            using var response = await Client.SendAsync(head);
            Assert.Equal("25000", response.Headers.GetValues("Upload-Offset").Single());
        }

        using (var rest = await Client.SendAsync(Patch(location, 25_000, upload[25_000..])))
        {
            Assert.Equal(HttpStatusCode.NoContent, rest.StatusCode);
        }

        using var get = await Client.SendAsync(Request(HttpMethod.Get, "/files/resumed.bin", "alice"));
        Assert.Equal(upload, await get.Content.ReadAsByteArrayAsync());
    }

    private async Task<string> CreateUploadAsync(long length, string filename)
    {
        using var create = Request(HttpMethod.Post, "/uploads", "alice");
        create.Headers.Add("Tus-Resumable", "1.0.0");
        create.Headers.Add("Upload-Length", length.ToString());
        create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", filename)]));
        using var created = await Client.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        return created.Headers.Location!.AbsolutePath;
    }

    private static HttpRequestMessage Patch(string location, long offset, byte[] chunk)
    {
        var patch = Request(HttpMethod.Patch, location, "alice", chunk);
        patch.Headers.Add("Tus-Resumable", "1.0.0");
        patch.Headers.Add("Upload-Offset", offset.ToString());
        patch.Content!.Headers.ContentType = new MediaTypeHeaderValue("application/offset+octet-stream");
        return patch;
    }

    private static HttpRequestMessage Request(HttpMethod method, string path, string user, byte[]? body = null)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-User-Id", user);
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
        }

        return request;
    }

    private sealed record Listing(IReadOnlyList<StoredFile> Files, string? NextCursor);
}
