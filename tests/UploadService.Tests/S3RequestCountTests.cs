using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using Amazon.Runtime;
using Amazon.S3;
using Microsoft.Extensions.DependencyInjection;
using UploadService.Storage;
using UploadService.Tus;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

/// <summary>
/// The requests the s3 backend sends per API request, counted by the SDK client's own HTTP handler against
/// the local S3-compatible server: what a request costs on R2 (every request is billed and is a round trip).
/// </summary>
[Collection(S3ServerCollection.Name)]
public sealed class S3RequestCountTests(S3Server server) : IAsyncLifetime
{
    private const int PartSize = (int)S3StoreOptions.MinPartSizeBytes;

    private readonly CountingHandlerFactory _requests = new();
    private UploadServiceFactory? _service;

    private HttpClient Client => _service!.Client;

    public async Task InitializeAsync()
    {
        var bucket = await server.CreateBucketAsync();
        var settings = server.ServiceSettings(bucket);
        settings["Storage:S3:PartSizeBytes"] = PartSize.ToString();
        settings["Upload:MaxFileBytes"] = (64 * PartSize).ToString();
        _service = UploadServiceFactory.WithSettings(
            settings,
            services => services.AddSingleton<IAmazonS3>(provider => provider.GetRequiredService<S3StoreOptions>().CreateClient(_requests)));
        using var warm = await Client.GetAsync("/health"); // start the service outside the counted requests
    }

    public async Task DisposeAsync() => await _service!.DisposeAsync();

    [Fact]
    public async Task A_small_put_is_its_record_alone_and_a_replace_reads_the_record_it_replaces()
    {
        // The user's first save lists which names have a record (once per process); this one is not counted.
        await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/first.bin", Bytes(10))), HttpStatusCode.Created);
        var bytes = Bytes(4096);

        var sent = await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/small.bin", bytes)), HttpStatusCode.Created);

        // The bytes are in the record: one request, and one GET to read the file back.
        Assert.Equal(["PUT Record"], sent.Select(request => request.ToString()));
        var read = await CountAsync(() => Client.SendAsync(Request(HttpMethod.Get, "/files/small.bin")), HttpStatusCode.OK, bytes);
        Assert.Equal(["GET Record"], read.Select(request => request.ToString()));

        var replacing = await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/small.bin", Bytes(4096, seed: 2))), HttpStatusCode.Created);

        // The previous version's record says whether a blob is to be deleted after the switch: it had none.
        Assert.Equal(["GET Record", "PUT Record"], replacing.Select(request => request.ToString()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_put_over_the_small_file_size_and_below_one_part_is_its_object_and_its_record()
    {
        await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/first.bin", Bytes(10))), HttpStatusCode.Created);
        var bytes = Bytes(S3FileStore.SmallFileBytes + 1);

        var sent = await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/medium.bin", bytes)), HttpStatusCode.Created);

        Assert.Equal(["PUT Blob", "PUT Record"], sent.Select(request => request.ToString()).Order(StringComparer.Ordinal));
        var replacing = await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/medium.bin", Bytes(100, seed: 2))), HttpStatusCode.Created);
        Assert.Equal(["DELETE Blob", "GET Record", "PUT Record"], replacing.Select(request => request.ToString()).Order(StringComparer.Ordinal));
        var read = await CountAsync(() => Client.SendAsync(Request(HttpMethod.Get, "/files/medium.bin")), HttpStatusCode.OK, Bytes(100, seed: 2));
        Assert.Equal(["GET Record"], read.Select(request => request.ToString()));
    }

    [Fact]
    public async Task A_small_tus_upload_is_its_state_then_its_record_alone()
    {
        await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/first.bin", Bytes(10))), HttpStatusCode.Created);
        var bytes = Bytes(4096, seed: 3);
        var location = await CreateUploadAsync(bytes.Length);

        var sent = await CountAsync(() => Client.SendAsync(Patch(location, 0, bytes)), HttpStatusCode.NoContent);

        // The state this process wrote at creation is not read again; the bytes go into the file's record, which alone
        // says the upload is committed: a HEAD reads the state, finds it older than the record, and says so.
        Assert.Equal(["PUT Record"], sent.Select(request => request.ToString()));
        var head = await CountAsync(() => Client.SendAsync(Head(location)), HttpStatusCode.OK);
        Assert.Equal(["GET UploadState", "GET Record"], head.Select(request => request.ToString()));
        await AssertCompleteAsync(location, bytes.Length);
        using var get = await Client.SendAsync(Request(HttpMethod.Get, "/files/counted.bin"));
        Assert.Equal(bytes, await get.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Replacing_or_deleting_the_file_of_a_small_tus_upload_marks_the_upload_committed_before_the_record_goes()
    {
        await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/first.bin", Bytes(10))), HttpStatusCode.Created);
        var bytes = Bytes(4096, seed: 4);
        var location = await CreateUploadAsync(bytes.Length);
        await CountAsync(() => Client.SendAsync(Patch(location, 0, bytes)), HttpStatusCode.NoContent);

        var replacing = await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/counted.bin", Bytes(100, seed: 5))), HttpStatusCode.Created);

        // In this order: with the record gone first, a crash in between would leave a state that reads as an upload
        // still waiting for its bytes, and resuming it would put the old bytes back over the new file.
        Assert.Equal(["GET Record", "GET UploadState", "PUT UploadState", "PUT Record"], replacing.Select(request => request.ToString()));
        await AssertCompleteAsync(location, bytes.Length);

        // The new file came from a PUT: deleting it reads no upload state.
        var deleting = await CountAsync(() => Client.SendAsync(Request(HttpMethod.Delete, "/files/counted.bin")), HttpStatusCode.NoContent);
        Assert.Equal(["GET Record", "DELETE Record"], deleting.Select(request => request.ToString()));

        // Another small upload of the same name, then a delete of its file: the upload stays complete, the file deleted.
        var again = Bytes(2048, seed: 6);
        var second = await CreateUploadAsync(again.Length);
        await CountAsync(() => Client.SendAsync(Patch(second, 0, again)), HttpStatusCode.NoContent);
        deleting = await CountAsync(() => Client.SendAsync(Request(HttpMethod.Delete, "/files/counted.bin")), HttpStatusCode.NoContent);
        Assert.Equal(["GET Record", "GET UploadState", "PUT UploadState", "DELETE Record"], deleting.Select(request => request.ToString()));
        await AssertCompleteAsync(second, again.Length);
        using var get = await Client.SendAsync(Request(HttpMethod.Get, "/files/counted.bin"));
        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
    }

    [Fact]
    public async Task A_replace_or_delete_that_cannot_mark_the_small_upload_committed_changes_nothing()
    {
        await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/first.bin", Bytes(10))), HttpStatusCode.Created);
        var bytes = Bytes(4096, seed: 7);
        var location = await CreateUploadAsync(bytes.Length);
        await CountAsync(() => Client.SendAsync(Patch(location, 0, bytes)), HttpStatusCode.NoContent);
        _requests.Sent.Clear();
        _requests.Fails = request => request.Method == "PUT" && request.Kind == ObjectKind.UploadState;

        using (var refused = await Client.SendAsync(Request(HttpMethod.Put, "/files/counted.bin", Bytes(100, seed: 8))))
        {
            Assert.True((int)refused.StatusCode >= 500, $"{(int)refused.StatusCode}");
        }

        using (var refused = await Client.SendAsync(Request(HttpMethod.Delete, "/files/counted.bin")))
        {
            Assert.True((int)refused.StatusCode >= 500, $"{(int)refused.StatusCode}");
        }

        _requests.Fails = null;
        Assert.DoesNotContain(_requests.Sent, request => request.Kind == ObjectKind.Record && request.Method is "PUT" or "DELETE");
        await AssertCompleteAsync(location, bytes.Length); // the record still names the upload
        using var get = await Client.SendAsync(Request(HttpMethod.Get, "/files/counted.bin"));
        Assert.Equal(bytes, await get.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task A_patch_reads_the_upload_state_at_most_once_writes_it_once_and_never_reads_back_its_own_tail()
    {
        await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/first.bin", Bytes(10))), HttpStatusCode.Created);
        var bytes = Bytes(2 * PartSize + 1_000_000, seed: 4);
        var location = await CreateUploadAsync(bytes.Length);
        var chunks = new[] { (0, 3_000_000), (3_000_000, 4_000_000), (7_000_000, bytes.Length - 7_000_000) };
        var written = new HashSet<string>();
        var totals = new List<int>();
        foreach (var (offset, length) in chunks)
        {
            var sent = await CountAsync(() => Client.SendAsync(Patch(location, offset, bytes.AsSpan(offset, length).ToArray())), HttpStatusCode.NoContent);
            var state = sent.Where(request => request.Kind == ObjectKind.UploadState).ToList();
            var at = $"PATCH at {offset}: {string.Join(", ", sent)}";
            Assert.True(state.Count(request => request.Method == "GET") == 0, at); // this process wrote it
            Assert.True(state.Count(request => request.Method == "PUT") == 1, at);
            totals.Add(sent.Count);
            // A tail read is the previous request's tail, never one this request wrote.
            Assert.All(sent.Where(request => request.Method == "GET" && request.Kind == ObjectKind.Tail),
                read => Assert.Contains(read.Key, written));
            Assert.DoesNotContain(sent, request => request.Method == "GET" && request.Kind == ObjectKind.Tail
                && sent.Any(put => put.Method == "PUT" && put.Key == request.Key));
            written.UnionWith(sent.Where(request => request.Method == "PUT").Select(request => request.Key));
        }

        // The tail; the tail read, a new part, the tail, the state, the old tail gone; the tail read, two parts, the
        // completion, the record, the state, the old tail gone.
        Assert.Equal([2, 6, 7], totals);
        using var get = await Client.SendAsync(Request(HttpMethod.Get, "/files/counted.bin"));
        Assert.Equal(bytes, await get.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Uploads_are_signed_without_hashing_their_bytes_and_the_server_accepts_them()
    {
        var bytes = Bytes(2 * PartSize + 4096, seed: 5);

        var sent = await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/big.bin", bytes)), HttpStatusCode.Created);

        // Two parts, the short last one and the record are PUTs; the server checked each request's signature.
        var uploads = sent.Where(request => request.Method == "PUT").ToList();
        Assert.Equal(["PUT Blob partNumber=1", "PUT Blob partNumber=2", "PUT Blob partNumber=3", "PUT Record"],
            uploads.Select(request => Regex.Replace(request.ToString(), "&?uploadId=[^&]*", "")).Order(StringComparer.Ordinal));
        Assert.All(uploads, request => Assert.Equal("UNSIGNED-PAYLOAD", request.PayloadHash));
        // Starting and completing the multipart upload sign their bodies' hash as usual.
        Assert.All(sent.Where(request => request.Method != "PUT"), request => Assert.Matches("^[0-9a-f]{64}$", request.PayloadHash));
        using var get = await Client.SendAsync(Request(HttpMethod.Get, "/files/big.bin"));
        Assert.Equal(bytes, await get.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Parts_are_all_one_size_but_the_last_and_no_request_carries_checksums_as_R2_wants()
    {
        // A PUT of two and a half parts, and a tus upload whose chunks do not line up with parts (a browser's do not).
        var bytes = Bytes(2 * PartSize + PartSize / 2, seed: 7);
        var sent = new List<S3Request>(await CountAsync(() => Client.SendAsync(Request(HttpMethod.Put, "/files/put.bin", bytes)), HttpStatusCode.Created));
        var location = await CreateUploadAsync(bytes.Length);
        foreach (var (offset, length) in new[] { (0, 3_000_000), (3_000_000, 4_000_000), (7_000_000, bytes.Length - 7_000_000) })
        {
            sent.AddRange(await CountAsync(() => Client.SendAsync(Patch(location, offset, bytes.AsSpan(offset, length).ToArray())), HttpStatusCode.NoContent));
        }

        // R2 refuses a multipart upload whose parts (but the last) differ in size, and does not take every checksum
        // header or aws-chunked trailer the SDK would add by default.
        var uploads = sent.Where(request => request.Method == "PUT" && request.Query.Contains("partNumber=", StringComparison.Ordinal))
            .GroupBy(request => Regex.Match(request.Query, "uploadId=([^&]*)").Groups[1].Value)
            .ToList();
        Assert.Equal(2, uploads.Count); // the PUT's and the tus upload's
        foreach (var parts in uploads)
        {
            var sizes = parts.OrderBy(part => int.Parse(Regex.Match(part.Query, "partNumber=([0-9]+)").Groups[1].Value))
                .Select(part => part.ContentLength!.Value).ToList();
            Assert.Equal(bytes.Length, sizes.Sum());
            Assert.All(sizes[..^1], size => Assert.Equal(PartSize, size));
            Assert.InRange(sizes[^1], 1, PartSize);
        }

        Assert.All(sent, request => Assert.Empty(request.ChecksumHeaders));
        using var get = await Client.SendAsync(Request(HttpMethod.Get, "/files/counted.bin"));
        Assert.Equal(bytes, await get.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task A_part_that_fails_mid_chunk_keeps_only_the_parts_before_it_and_the_upload_resumes_there()
    {
        // One chunk of three parts and a bit; the second part keeps failing (the SDK's retries included) while the
        // third fills behind it. The append keeps what is stored without a hole: the first part, not the third.
        var bytes = Bytes(3 * PartSize + 1000, seed: 9);
        var location = await CreateUploadAsync(bytes.Length);
        _requests.Fails = request => request.Method == "PUT" && request.Query.StartsWith("partNumber=2&", StringComparison.Ordinal);

        using (var failed = await Client.SendAsync(Patch(location, 0, bytes)))
        {
            Assert.True((int)failed.StatusCode >= 500, $"{(int)failed.StatusCode}");
        }

        _requests.Fails = null;
        using (var offset = await Client.SendAsync(Head(location)))
        {
            Assert.Equal(PartSize.ToString(), offset.Headers.GetValues("Upload-Offset").Single());
        }

        await CountAsync(() => Client.SendAsync(Patch(location, PartSize, bytes.AsSpan(PartSize).ToArray())), HttpStatusCode.NoContent);
        using var get = await Client.SendAsync(Request(HttpMethod.Get, "/files/counted.bin"));
        Assert.Equal(bytes, await get.Content.ReadAsByteArrayAsync());
    }

    private async Task<IReadOnlyList<S3Request>> CountAsync(Func<Task<HttpResponseMessage>> send, HttpStatusCode expected, byte[]? body = null)
    {
        _requests.Sent.Clear();
        using var response = await send();
        Assert.True(response.StatusCode == expected, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        if (body is not null)
        {
            Assert.Equal(body, await response.Content.ReadAsByteArrayAsync());
        }

        return _requests.Sent.ToArray();
    }

    private async Task<string> CreateUploadAsync(long length)
    {
        _requests.Sent.Clear();
        using var create = Request(HttpMethod.Post, "/uploads");
        create.Headers.Add("Tus-Resumable", "1.0.0");
        create.Headers.Add("Upload-Length", length.ToString());
        create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "counted.bin")]));
        using var created = await Client.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(["PUT UploadState"], _requests.Sent.Select(request => request.ToString()));
        return created.Headers.Location!.AbsolutePath;
    }

    /// <summary>HEAD says the upload is complete, and a PATCH that would send its bytes again is refused.</summary>
    private async Task AssertCompleteAsync(string location, long length)
    {
        using (var head = await Client.SendAsync(Head(location)))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(length.ToString(), head.Headers.GetValues("Upload-Offset").Single());
        }

        using var again = await Client.SendAsync(Patch(location, 0, Bytes((int)length, seed: 99)));
        Assert.Equal(HttpStatusCode.Forbidden, again.StatusCode);
    }

    private static HttpRequestMessage Head(string location)
    {
        var head = Request(HttpMethod.Head, location);
        head.Headers.Add("Tus-Resumable", "1.0.0");
        return head;
    }

    private static HttpRequestMessage Patch(string location, long offset, byte[] chunk)
    {
        var patch = Request(HttpMethod.Patch, location, chunk);
        patch.Headers.Add("Tus-Resumable", "1.0.0");
        patch.Headers.Add("Upload-Offset", offset.ToString());
        patch.Content!.Headers.ContentType = new MediaTypeHeaderValue("application/offset+octet-stream");
        return patch;
    }

    private static HttpRequestMessage Request(HttpMethod method, string path, byte[]? body = null)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-User-Id", "alice");
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
        }

        return request;
    }

    private enum ObjectKind { Record, Blob, UploadState, Tail, Other }

    /// <summary>One request as the store sent it: method, object key (without the bucket) and query.</summary>
    private sealed record S3Request(string Method, string Key, string Query, string? PayloadHash, long? ContentLength, IReadOnlyList<string> ChecksumHeaders)
    {
        public ObjectKind Kind => Key switch
        {
            _ when Key.StartsWith("uploads/", StringComparison.Ordinal) && Key.EndsWith("/state", StringComparison.Ordinal) => ObjectKind.UploadState,
            _ when Key.StartsWith("uploads/", StringComparison.Ordinal) && Key.Contains("/tail.", StringComparison.Ordinal) => ObjectKind.Tail,
            _ when Key.StartsWith("users/", StringComparison.Ordinal) && Key.Contains("/files/", StringComparison.Ordinal) => ObjectKind.Record,
            _ when Key.StartsWith("users/", StringComparison.Ordinal) && Key.Contains("/blobs/", StringComparison.Ordinal) => ObjectKind.Blob,
            _ => ObjectKind.Other,
        };

        public override string ToString() => $"{Method} {Kind} {Query}".TrimEnd();
    }

    /// <summary>The SDK's HTTP stack with a handler in front that records every request it sends.</summary>
    private sealed class CountingHandlerFactory : HttpClientFactory
    {
        public ConcurrentQueue<S3Request> Sent { get; } = new();

        /// <summary>Requests answered 500 by the handler instead of the server (a store that keeps failing them).</summary>
        public Func<S3Request, bool>? Fails { get; set; }

        public override HttpClient CreateHttpClient(IClientConfig clientConfig) => new(new Recorder(this, new SocketsHttpHandler()));

        private sealed class Recorder(CountingHandlerFactory owner, HttpMessageHandler inner) : DelegatingHandler(inner)
        {
            protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
            {
                var path = Uri.UnescapeDataString(request.RequestUri!.AbsolutePath).TrimStart('/');
                var key = path.IndexOf('/') is var slash and >= 0 ? path[(slash + 1)..] : "";
                var headers = request.Headers.Concat(request.Content?.Headers.AsEnumerable() ?? []).ToList();
                var checksums = headers.Where(header => header.Key.StartsWith("x-amz-checksum-", StringComparison.OrdinalIgnoreCase)
                        || header.Key.StartsWith("x-amz-sdk-checksum", StringComparison.OrdinalIgnoreCase)
                        || header.Key.Equals("x-amz-trailer", StringComparison.OrdinalIgnoreCase)
                        || header.Key.Equals("x-amz-decoded-content-length", StringComparison.OrdinalIgnoreCase)
                        || (header.Key.Equals("Content-Encoding", StringComparison.OrdinalIgnoreCase) && header.Value.Any(v => v.Contains("aws-chunked"))))
                    .Select(header => header.Key).ToList();
                var sent = new S3Request(request.Method.Method, key, request.RequestUri.Query.TrimStart('?'),
                    request.Headers.TryGetValues("x-amz-content-sha256", out var hash) ? hash.Single() : null,
                    request.Content?.Headers.ContentLength, checksums);
                owner.Sent.Enqueue(sent);
                return owner.Fails?.Invoke(sent) == true
                    ? Task.FromResult(new HttpResponseMessage(HttpStatusCode.InternalServerError) { RequestMessage = request })
                    : base.SendAsync(request, cancellationToken);
            }
        }
    }
}
