using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

public sealed class FilesApiTests(UploadServiceFactory service) : IClassFixture<UploadServiceFactory>
{
    private const string ProblemJson = "application/problem+json";

    private readonly HttpClient _client = service.Client;

    // Each test works in its own namespace, so tests sharing the server cannot see each other's files.
    private readonly string _user = "user-" + Guid.NewGuid().ToString("N");

    private HttpRequestMessage Request(HttpMethod method, string url, HttpContent? content = null, string? user = null)
    {
        var request = new HttpRequestMessage(method, url) { Content = content };
        request.Headers.Add("X-User-Id", user ?? _user);
        return request;
    }

    private async Task<HttpResponseMessage> PutAsync(string url, byte[] bytes, string? contentType = null, string? user = null)
    {
        var content = new ByteArrayContent(bytes);
        if (contentType is not null)
        {
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }

        return await _client.SendAsync(Request(HttpMethod.Put, url, content, user));
    }

    private async Task<JsonElement> ListAsync(string query = "")
    {
        using var response = await _client.SendAsync(Request(HttpMethod.Get, "/files" + query));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal(ProblemJson, response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("title").GetString()));
        return problem;
    }

    [Fact]
    public async Task The_root_is_no_route_even_for_a_signed_caller()
    {
        // The Worker forwards only /files and /uploads; nothing legitimate asks the service for /.
        using var response = await _client.GetAsync("/");

        await AssertProblemAsync(response, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task The_container_librarys_unsigned_probe_of_the_root_gets_an_answer_and_nothing_else()
    {
        // The Container class pings GET / without a signature and counts any answer as "the port is up":
        // the signature check answers it (401), and the root's body stays with the Durable Object's requests.
        using var response = await service.UnsignedClient.GetAsync("/");

        var problem = await AssertProblemAsync(response, HttpStatusCode.Unauthorized);
        Assert.False(problem.TryGetProperty("service", out _));
    }

    [Fact]
    public async Task Health_endpoints_are_mapped()
    {
        using var health = await _client.GetAsync("/health");
        using var alive = await _client.GetAsync("/alive");

        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("al ice")]
    [InlineData("%2e%2e")]
    public async Task Requests_without_a_valid_user_id_are_rejected_with_a_problem(string? userId)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/files");
        if (userId is not null)
        {
            request.Headers.TryAddWithoutValidation("X-User-Id", userId);
        }

        using var response = await _client.SendAsync(request);

        var problem = await AssertProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.Contains("X-User-Id", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Overlong_or_repeated_user_ids_are_rejected()
    {
        using var tooLong = await _client.SendAsync(Request(HttpMethod.Get, "/files", user: new string('u', 129)));
        var repeated = new HttpRequestMessage(HttpMethod.Get, "/files");
        repeated.Headers.Add("X-User-Id", ["alice", "bob"]);
        using var twice = await _client.SendAsync(repeated);

        await AssertProblemAsync(tooLong, HttpStatusCode.BadRequest);
        await AssertProblemAsync(twice, HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("/files/a//b")]
    [InlineData("/files/a/")]
    [InlineData("/files/a%5Cb")]
    [InlineData("/files/a%01b")]
    public async Task Invalid_names_are_rejected_with_a_problem_and_nothing_is_stored(string url)
    {
        using var response = await PutAsync(url, Bytes(10));

        var problem = await AssertProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.StartsWith("Invalid file name", problem.GetProperty("detail").GetString());
        Assert.Equal(0, (await ListAsync()).GetProperty("files").GetArrayLength());
    }

    [Fact]
    public async Task Unknown_routes_and_methods_answer_with_problems()
    {
        using var unknown = await _client.SendAsync(Request(HttpMethod.Get, "/no-such-route"));
        using var wrongMethod = await _client.SendAsync(Request(HttpMethod.Patch, "/files/a.txt"));

        await AssertProblemAsync(unknown, HttpStatusCode.NotFound);
        await AssertProblemAsync(wrongMethod, HttpStatusCode.MethodNotAllowed);
    }

    [Fact]
    public async Task Unknown_files_are_404_problems_for_get_head_and_delete()
    {
        using var get = await _client.SendAsync(Request(HttpMethod.Get, "/files/missing.txt"));
        using var head = await _client.SendAsync(Request(HttpMethod.Head, "/files/missing.txt"));
        using var delete = await _client.SendAsync(Request(HttpMethod.Delete, "/files/missing.txt"));

        await AssertProblemAsync(get, HttpStatusCode.NotFound);
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        await AssertProblemAsync(delete, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Put_stores_the_body_and_get_serves_it_with_validators_and_ranges()
    {
        var bytes = Bytes(10_000);
        var sha = Sha256(bytes);

        using var put = await PutAsync("/files/docs/a%20b.txt", bytes, "text/plain");

        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        Assert.Equal("/files/docs/a%20b.txt", put.Headers.Location?.OriginalString);
        var item = await put.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("docs/a b.txt", item.GetProperty("name").GetString());
        Assert.Equal(bytes.Length, item.GetProperty("size").GetInt64());
        Assert.Equal(sha, item.GetProperty("sha256").GetString());
        Assert.Equal("text/plain", item.GetProperty("contentType").GetString());
        Assert.True(item.GetProperty("createdAt").TryGetDateTimeOffset(out _));

        using var get = await _client.SendAsync(Request(HttpMethod.Get, "/files/docs/a%20b.txt"));
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(bytes, await get.Content.ReadAsByteArrayAsync());
        Assert.Equal($"\"{sha}\"", get.Headers.ETag?.Tag);
        Assert.False(get.Headers.ETag?.IsWeak);
        Assert.Equal("text/plain", get.Content.Headers.ContentType?.MediaType);
        Assert.Equal(bytes.Length, get.Content.Headers.ContentLength);
        Assert.NotNull(get.Content.Headers.LastModified);
        Assert.Contains("bytes", get.Headers.AcceptRanges);

        var range = Request(HttpMethod.Get, "/files/docs/a%20b.txt");
        range.Headers.Range = new RangeHeaderValue(100, 199);
        using var partial = await _client.SendAsync(range);
        Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
        Assert.Equal(bytes[100..200], await partial.Content.ReadAsByteArrayAsync());
        Assert.Equal("bytes 100-199/10000", partial.Content.Headers.ContentRange?.ToString());

        var beyond = Request(HttpMethod.Get, "/files/docs/a%20b.txt");
        beyond.Headers.Range = new RangeHeaderValue(20_000, null);
        using var unsatisfiable = await _client.SendAsync(beyond);
        Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, unsatisfiable.StatusCode);
        Assert.Equal("bytes */10000", unsatisfiable.Content.Headers.ContentRange?.ToString());

        var conditional = Request(HttpMethod.Get, "/files/docs/a%20b.txt");
        conditional.Headers.IfNoneMatch.Add(new EntityTagHeaderValue($"\"{sha}\""));
        using var notModified = await _client.SendAsync(conditional);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);

        using var head = await _client.SendAsync(Request(HttpMethod.Head, "/files/docs/a%20b.txt"));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(bytes.Length, head.Content.Headers.ContentLength);
        Assert.Equal($"\"{sha}\"", head.Headers.ETag?.Tag);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Put_without_content_type_defaults_to_octet_stream_and_replaces_on_second_put()
    {
        using var first = await PutAsync("/files/x.bin", Bytes(100, seed: 1));
        using var second = await PutAsync("/files/x.bin", Bytes(50, seed: 2));
        Assert.Equal(HttpStatusCode.Created, second.StatusCode);

        using var get = await _client.SendAsync(Request(HttpMethod.Get, "/files/x.bin"));
        Assert.Equal(Bytes(50, seed: 2), await get.Content.ReadAsByteArrayAsync());
        Assert.Equal("application/octet-stream", get.Content.Headers.ContentType?.MediaType);
        Assert.Equal(1, (await ListAsync()).GetProperty("files").GetArrayLength());
    }

    [Theory]
    [InlineData("text/html", true)]
    [InlineData("text/html; charset=utf-8", true)]
    [InlineData("TEXT/HTML", true)]
    [InlineData("image/svg+xml", true)]
    [InlineData("application/xhtml+xml", true)]
    [InlineData("application/rss+xml", true)]
    [InlineData("text/xml", true)]
    [InlineData("application/javascript", true)]
    [InlineData("text/javascript", true)]
    [InlineData("text/plain", false)]
    [InlineData("image/png", false)]
    [InlineData("application/json", false)]
    [InlineData("application/octet-stream", false)]
    public async Task Active_content_types_download_as_attachments_and_nothing_is_sniffed(string contentType, bool attachment)
    {
        using var put = await PutAsync("/files/pages/evil.page", "<script>alert(1)</script>"u8.ToArray(), contentType);
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);

        using var get = await _client.SendAsync(Request(HttpMethod.Get, "/files/pages/evil.page"));
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal("nosniff", get.Headers.GetValues("X-Content-Type-Options").Single());
        var disposition = get.Content.Headers.ContentDisposition;
        if (attachment)
        {
            Assert.Equal("attachment", disposition?.DispositionType);
            Assert.Equal("evil.page", disposition?.FileName?.Trim('"'));
        }
        else
        {
            Assert.Null(disposition);
        }
    }

    [Fact]
    public async Task Delete_removes_the_file()
    {
        using var put = await PutAsync("/files/gone.txt", Bytes(10));

        using var delete = await _client.SendAsync(Request(HttpMethod.Delete, "/files/gone.txt"));
        using var get = await _client.SendAsync(Request(HttpMethod.Get, "/files/gone.txt"));

        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        await AssertProblemAsync(get, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Other_users_cannot_read_list_or_delete_a_file()
    {
        using var put = await PutAsync("/files/private.txt", Bytes(10));
        var other = "other-" + Guid.NewGuid().ToString("N");

        using var get = await _client.SendAsync(Request(HttpMethod.Get, "/files/private.txt", user: other));
        using var delete = await _client.SendAsync(Request(HttpMethod.Delete, "/files/private.txt", user: other));
        using var list = await _client.SendAsync(Request(HttpMethod.Get, "/files", user: other));

        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, delete.StatusCode);
        Assert.Equal(0, (await list.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("files").GetArrayLength());
        Assert.Equal(1, (await ListAsync()).GetProperty("files").GetArrayLength());
    }

    [Fact]
    public async Task Put_with_a_declared_length_over_the_limit_is_413_before_reading()
    {
        using var response = await PutAsync("/files/big.bin", Bytes((int)UploadServiceFactory.MaxFileBytes + 1));

        await AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal(0, (await ListAsync()).GetProperty("files").GetArrayLength());
    }

    [Fact]
    public async Task Chunked_put_that_grows_over_the_limit_is_413_and_keeps_nothing()
    {
        var request = Request(HttpMethod.Put, "/files/big.bin", new ByteArrayContent(Bytes((int)UploadServiceFactory.MaxFileBytes * 2)));
        request.Headers.TransferEncodingChunked = true;

        using var response = await _client.SendAsync(request);

        await AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal(0, (await ListAsync()).GetProperty("files").GetArrayLength());
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(service.StorageRoot, "tmp")));
    }

    [Fact]
    public async Task Put_at_exactly_the_limit_is_accepted()
    {
        using var response = await PutAsync("/files/limit.bin", Bytes((int)UploadServiceFactory.MaxFileBytes));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Fact]
    public async Task Multipart_post_stores_every_file_part_under_the_prefix()
    {
        var first = Bytes(3000, seed: 1);
        var second = Bytes(5000, seed: 2);
        using var form = new MultipartFormDataContent
        {
            { new StringContent("not a file"), "comment" },
            { new ByteArrayContent(first), "file", "one.bin" },
            { new ByteArrayContent(second) { Headers = { ContentType = new MediaTypeHeaderValue("image/png") } }, "file", "two.png" },
        };

        using var response = await _client.SendAsync(Request(HttpMethod.Post, "/files?prefix=uploads/2024/", form));

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var files = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("files");
        Assert.Equal(["uploads/2024/one.bin", "uploads/2024/two.png"], files.EnumerateArray().Select(f => f.GetProperty("name").GetString()));
        Assert.Equal(Sha256(first), files[0].GetProperty("sha256").GetString());
        Assert.Equal("image/png", files[1].GetProperty("contentType").GetString());
        using var get = await _client.SendAsync(Request(HttpMethod.Get, "/files/uploads/2024/two.png"));
        Assert.Equal(second, await get.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Truncated_multipart_is_a_400_and_the_broken_part_is_not_visible()
    {
        const string body = "--b0undary\r\nContent-Disposition: form-data; name=\"f\"; filename=\"cut.bin\"\r\n\r\nsome bytes but no closing boundary";
        var content = new StringContent(body, Encoding.ASCII);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("multipart/form-data; boundary=b0undary");

        using var response = await _client.SendAsync(Request(HttpMethod.Post, "/files", content));

        await AssertProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal(0, (await ListAsync()).GetProperty("files").GetArrayLength());
    }

    [Fact]
    public async Task Multipart_part_over_the_limit_is_413_and_only_earlier_parts_stay()
    {
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(Bytes(100)), "file", "small.bin" },
            { new ByteArrayContent(Bytes((int)UploadServiceFactory.MaxFileBytes + 1)), "file", "huge.bin" },
        };

        using var response = await _client.SendAsync(Request(HttpMethod.Post, "/files", form));

        var problem = await AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal(["small.bin"], problem.GetProperty("stored").EnumerateArray().Select(e => e.GetString()));
        var names = (await ListAsync()).GetProperty("files").EnumerateArray().Select(f => f.GetProperty("name").GetString());
        Assert.Equal(["small.bin"], names);
    }

    [Fact]
    public async Task Chunked_multipart_over_the_total_request_limit_is_stopped_by_kestrel()
    {
        const int parts = 20;
        const int partBytes = 60 * 1024; // each part is under the file limit; together they pass the request limit
        using var form = new MultipartFormDataContent();
        for (var i = 0; i < parts; i++)
        {
            form.Add(new ByteArrayContent(Bytes(partBytes, seed: i)), "file", $"part-{i:D2}.bin");
        }

        var request = Request(HttpMethod.Post, "/files", form);
        request.Headers.TransferEncodingChunked = true;
        using var response = await _client.SendAsync(request);

        var problem = await AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge);
        var stored = problem.GetProperty("stored").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.InRange(stored.Count, 1, parts - 1);
        var listed = (await ListAsync()).GetProperty("files").EnumerateArray().Select(f => f.GetProperty("name").GetString());
        Assert.Equal(stored, listed);
    }

    [Theory]
    [InlineData("../evil.bin", null)]
    [InlineData("a\\b.bin", null)]
    [InlineData("ok.bin", "..")]
    public async Task Multipart_names_and_prefixes_follow_the_name_rules(string fileName, string? prefix)
    {
        using var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(Bytes(10));
        part.Headers.ContentDisposition = new ContentDispositionHeaderValue("form-data") { Name = "\"f\"", FileName = $"\"{fileName}\"" };
        form.Add(part);

        using var response = await _client.SendAsync(Request(HttpMethod.Post, prefix is null ? "/files" : $"/files?prefix={prefix}", form));

        await AssertProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.Equal(0, (await ListAsync()).GetProperty("files").GetArrayLength());
    }

    [Fact]
    public async Task Post_that_is_not_multipart_or_has_no_file_part_is_rejected()
    {
        using var raw = await _client.SendAsync(Request(HttpMethod.Post, "/files", new ByteArrayContent(Bytes(10))));
        using var fieldsOnly = await _client.SendAsync(Request(HttpMethod.Post, "/files",
            new MultipartFormDataContent { { new StringContent("x"), "field" } }));

        await AssertProblemAsync(raw, HttpStatusCode.UnsupportedMediaType);
        await AssertProblemAsync(fieldsOnly, HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("?limit=0")]
    [InlineData("?limit=1001")]
    [InlineData("?limit=-1")]
    [InlineData("?limit=ten")]
    [InlineData("?limit=")]
    [InlineData("?cursor=not*base64")]
    [InlineData("?cursor=Li4")] // base64url of "..": decodes, but is no name this service would issue
    public async Task Bad_list_parameters_are_400_problems(string query)
    {
        using var response = await _client.SendAsync(Request(HttpMethod.Get, "/files" + query));

        await AssertProblemAsync(response, HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task List_pages_through_a_prefix_with_the_cursor()
    {
        foreach (var name in new[] { "p/3", "p/1", "q/1", "p/2", "p/4", "p/5" })
        {
            using var put = await PutAsync("/files/" + name, Bytes(1));
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        }

        var seen = new List<string?>();
        var query = "?prefix=p/&limit=2";
        var pages = 0;
        while (true)
        {
            var page = await ListAsync(query);
            pages++;
            seen.AddRange(page.GetProperty("files").EnumerateArray().Select(f => f.GetProperty("name").GetString()));
            var cursor = page.GetProperty("nextCursor");
            if (cursor.ValueKind == JsonValueKind.Null)
            {
                break;
            }

            query = "?prefix=p/&limit=2&cursor=" + Uri.EscapeDataString(cursor.GetString()!);
        }

        Assert.Equal(["p/1", "p/2", "p/3", "p/4", "p/5"], seen);
        Assert.Equal(3, pages);
    }
}
