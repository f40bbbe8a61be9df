using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using UploadService.Storage;
using UploadService.Tus;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

/// <summary>
/// <c>Upload:UserQuotaBytes</c> through the real service on both backends: a declared length that does not fit
/// is 413 before the body is read; a body of unknown length is stopped at the quota and leaves nothing;
/// concurrent uploads of one user never store more than the quota; deleting frees room at once.
/// </summary>
public abstract class QuotaTests : IAsyncLifetime
{
    protected const long Quota = 40_000; // below Upload:MaxFileBytes (64 KiB), so the quota is what refuses

    private UploadServiceFactory? _service;

    protected HttpClient Client => _service!.Client;

    protected abstract Task<Dictionary<string, string>> SettingsAsync();

    /// <summary>The backend's figure for a user (what the quota rests on).</summary>
    private Task<long> UsageAsync(string user) =>
        _service!.Services.GetRequiredService<IFileStore>().GetUsageAsync(User(user), CancellationToken.None);

    public async Task InitializeAsync()
    {
        var settings = await SettingsAsync();
        settings["Upload:UserQuotaBytes"] = Quota.ToString();
        _service = UploadServiceFactory.WithSettings(settings);
    }

    public virtual async Task DisposeAsync() => await _service!.DisposeAsync();

    private static HttpRequestMessage Put(string user, string name, HttpContent content)
    {
        var request = new HttpRequestMessage(HttpMethod.Put, "/files/" + name) { Content = content };
        request.Headers.Add("X-User-Id", user);
        return request;
    }

    private async Task<HttpStatusCode> PutAsync(string user, string name, byte[] bytes, bool chunked = false)
    {
        HttpContent content = chunked ? new StreamContent(new NonSeekableStream(bytes)) : new ByteArrayContent(bytes);
        using var response = await Client.SendAsync(Put(user, name, content));
        if (response.StatusCode != HttpStatusCode.Created)
        {
            await AssertQuotaProblemAsync(response);
        }

        return response.StatusCode;
    }

    private async Task<string[]> ListAsync(string user)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/files");
        request.Headers.Add("X-User-Id", user);
        using var response = await Client.SendAsync(request);
        var list = await response.Content.ReadFromJsonAsync<JsonElement>();
        return list.GetProperty("files").EnumerateArray().Select(file => file.GetProperty("name").GetString()!).ToArray();
    }

    private static async Task AssertQuotaProblemAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.RequestEntityTooLarge, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("quota", body);
    }

    [Fact]
    public async Task A_declared_length_over_the_quota_is_413_before_the_body_is_sent()
    {
        var user = "quota-" + Guid.NewGuid().ToString("N");
        Assert.Equal(HttpStatusCode.Created, await PutAsync(user, "first.bin", Bytes(30_000)));

        // Headers only: the body never comes, so an answer proves the service did not wait for it.
        var response = await RawHttp.SendAsync(Client.BaseAddress!,
            $"PUT /files/second.bin HTTP/1.1\r\nHost: test\r\nX-User-Id: {user}\r\nContent-Length: 20000\r\nConnection: close",
            timeout: TimeSpan.FromSeconds(10));

        Assert.NotNull(response);
        Assert.Equal(413, response.Status);
        Assert.Equal("application/problem+json", response.ContentType);
        Assert.Equal(["first.bin"], await ListAsync(user));
        Assert.Equal(30_000, await UsageAsync(user));
    }

    [Fact]
    public async Task A_chunked_body_is_stopped_at_the_quota_and_leaves_nothing()
    {
        var user = "quota-" + Guid.NewGuid().ToString("N");
        Assert.Equal(HttpStatusCode.Created, await PutAsync(user, "first.bin", Bytes(30_000)));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, await PutAsync(user, "second.bin", Bytes(20_000), chunked: true));

        Assert.Equal(["first.bin"], await ListAsync(user));
        Assert.Equal(30_000, await UsageAsync(user));
        Assert.Equal(HttpStatusCode.Created, await PutAsync(user, "fits.bin", Bytes(10_000), chunked: true)); // exactly the quota
    }

    [Fact]
    public async Task Deleting_or_replacing_a_file_frees_its_room()
    {
        var user = "quota-" + Guid.NewGuid().ToString("N");
        Assert.Equal(HttpStatusCode.Created, await PutAsync(user, "a.bin", Bytes(10_000)));
        // A replacement needs room for the new version beside the old one while it runs (25,000 here).
        Assert.Equal(HttpStatusCode.Created, await PutAsync(user, "a.bin", Bytes(15_000)));
        Assert.Equal(15_000, await UsageAsync(user));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, await PutAsync(user, "b.bin", Bytes(30_000)));

        using (var delete = new HttpRequestMessage(HttpMethod.Delete, "/files/a.bin"))
        {
            delete.Headers.Add("X-User-Id", user);
            using var deleted = await Client.SendAsync(delete);
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        Assert.Equal(HttpStatusCode.Created, await PutAsync(user, "b.bin", Bytes(40_000)));
        Assert.Equal(40_000, await UsageAsync(user));
    }

    [Fact]
    public async Task Users_have_separate_quotas()
    {
        var alice = "quota-" + Guid.NewGuid().ToString("N");
        var bob = "quota-" + Guid.NewGuid().ToString("N");
        Assert.Equal(HttpStatusCode.Created, await PutAsync(alice, "a.bin", Bytes(40_000)));
        Assert.Equal(HttpStatusCode.Created, await PutAsync(bob, "b.bin", Bytes(40_000)));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, await PutAsync(alice, "c.bin", Bytes(1)));
    }

    [Fact]
    public async Task Concurrent_uploads_of_one_user_never_store_more_than_the_quota()
    {
        var user = "quota-" + Guid.NewGuid().ToString("N");
        const int size = 15_000; // room for two of the eight
        var statuses = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => PutAsync(user, $"c{i}.bin", Bytes(size, seed: i), chunked: i % 2 == 0)));

        Assert.All(statuses, status => Assert.True(status is HttpStatusCode.Created or HttpStatusCode.RequestEntityTooLarge));
        var stored = await ListAsync(user);
        Assert.Equal(statuses.Count(status => status == HttpStatusCode.Created), stored.Length);
        Assert.InRange(stored.Length, 0, 2); // racing unknown-length bodies may refuse each other, never overshoot
        Assert.Equal(stored.Length * size, await UsageAsync(user));
    }

    [Fact]
    public async Task Multipart_parts_count_and_a_part_past_the_quota_is_413_with_the_earlier_parts_kept()
    {
        var user = "quota-" + Guid.NewGuid().ToString("N");
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(Bytes(25_000)), "file", "one.bin" },
            { new ByteArrayContent(Bytes(25_000)), "file", "two.bin" },
        };
        // Chunked: the quota cannot refuse up front, so the second part is cut off where it crosses the quota.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/files") { Content = new StreamContent(new NonSeekableStream(await form.ReadAsByteArrayAsync())) };
        request.Content.Headers.ContentType = form.Headers.ContentType;
        request.Headers.Add("X-User-Id", user);

        using var response = await Client.SendAsync(request);

        await AssertQuotaProblemAsync(response);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(["one.bin"], problem.GetProperty("stored").EnumerateArray().Select(name => name.GetString()));
        Assert.Equal(["one.bin"], await ListAsync(user));
        Assert.Equal(25_000, await UsageAsync(user));
    }

    [Fact]
    public async Task Tus_uploads_count_while_unfinished_and_a_length_over_the_quota_is_refused_at_creation()
    {
        var user = "quota-" + Guid.NewGuid().ToString("N");
        using (var tooLong = Tus(HttpMethod.Post, "/uploads", user))
        {
            tooLong.Headers.Add("Upload-Length", (Quota + 1).ToString());
            tooLong.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "big.bin")]));
            using var refused = await Client.SendAsync(tooLong);
            await AssertQuotaProblemAsync(refused);
        }

        Assert.Equal(0, await UsageAsync(user));

        var location = await CreateDeferredAsync(user, "deferred.bin");
        using (var first = await PatchAsync(user, location, 0, Bytes(30_000), chunked: false))
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        Assert.Equal(30_000, await UsageAsync(user)); // an unfinished upload's bytes count

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, await PutAsync(user, "plain.bin", Bytes(20_000), chunked: true));

        // A chunk of unknown length that crosses the quota is discarded whole: the offset stays where it was.
        using (var crossing = await PatchAsync(user, location, 30_000, Bytes(20_000), chunked: true))
            await AssertQuotaProblemAsync(crossing);
        Assert.Equal(30_000, await OffsetAsync(user, location));
        Assert.Equal(30_000, await UsageAsync(user));

        using (var last = await PatchAsync(user, location, 30_000, Bytes(10_000), chunked: true, uploadLength: 40_000))
            Assert.Equal(HttpStatusCode.NoContent, last.StatusCode);
        Assert.Equal(["deferred.bin"], await ListAsync(user));
        Assert.Equal(40_000, await UsageAsync(user)); // the finished upload is counted once, as the file
    }

    private static HttpRequestMessage Tus(HttpMethod method, string path, string user)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-User-Id", user);
        request.Headers.Add("Tus-Resumable", "1.0.0");
        return request;
    }

    private async Task<Uri> CreateDeferredAsync(string user, string name)
    {
        using var request = Tus(HttpMethod.Post, "/uploads", user);
        request.Headers.Add("Upload-Defer-Length", "1");
        request.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", name)]));
        using var response = await Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return response.Headers.Location!;
    }

    private Task<HttpResponseMessage> PatchAsync(string user, Uri location, long offset, byte[] chunk, bool chunked, long? uploadLength = null)
    {
        var request = Tus(HttpMethod.Patch, location.AbsolutePath, user);
        request.Content = chunked ? new StreamContent(new NonSeekableStream(chunk)) : new ByteArrayContent(chunk);
        request.Content.Headers.ContentType = new MediaTypeHeaderValue(TusProtocol.OffsetContentType);
        request.Headers.Add("Upload-Offset", offset.ToString());
        if (uploadLength is not null)
        {
            request.Headers.Add("Upload-Length", uploadLength.ToString());
        }

        return Client.SendAsync(request);
    }

    private async Task<long> OffsetAsync(string user, Uri location)
    {
        using var head = await Client.SendAsync(Tus(HttpMethod.Head, location.AbsolutePath, user));
        return long.Parse(head.Headers.GetValues("Upload-Offset").Single());
    }
}

public sealed class FileSystemQuotaTests : QuotaTests
{
    protected override Task<Dictionary<string, string>> SettingsAsync() => Task.FromResult(new Dictionary<string, string>());
}

[Collection(S3ServerCollection.Name)]
public sealed class S3QuotaTests(S3Server server) : QuotaTests
{
    protected override async Task<Dictionary<string, string>> SettingsAsync() => server.ServiceSettings(await server.CreateBucketAsync());
}

/// <summary>A body of unknown length: HttpClient sends it chunked (no Content-Length).</summary>
public sealed class NonSeekableStream(byte[] bytes) : Stream
{
    private readonly MemoryStream _inner = new(bytes);

    public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, Math.Min(count, 4096));
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
