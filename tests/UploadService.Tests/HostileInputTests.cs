using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using UploadService.Tus;
using Xunit.Abstractions;

namespace UploadService.Tests;

/// <summary>
/// The hostile-input suite: every case is one test (xUnit shows each by name), sent to the real service on
/// real Kestrel, most of them byte for byte over a raw socket so that no client library tidies them up.
/// Each must get a 4xx (problem+json whenever the service, not Kestrel's request parser, answers), leave
/// nothing stored for its user (no file listed, no bytes on disk) and leave the service healthy.
/// <see cref="Count"/> is the number of hostile inputs; <see cref="The_suite_counts_its_hostile_inputs"/> prints it.
/// </summary>
public sealed class HostileInputTests(UploadServiceFactory service, ITestOutputHelper output) : IClassFixture<UploadServiceFactory>
{
    private const string ProblemJson = "application/problem+json";

    /// <summary>Request targets sent raw with PUT: traversal and lookalike spellings at the URL layer.</summary>
    public static TheoryData<string> HostileTargets => new()
    {
        "/files/..", "/files/../../etc/passwd", "/files/a/../../../etc/passwd", "/files/./../x", "/files/.%2e/x",
        "/files/%2e%2e", "/files/%2E%2E", "/files/%2e%2e/%2e%2e/etc/passwd", "/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/files/a/%2e%2e%2f%2e%2e%2fx", "/files/%252e%252e", "/files/%252e%252e%252fetc", "/files/%25252e%25252e",
        "/files/..%5c..%5cwindows%5cwin.ini", "/files/%5c%5cserver%5cshare", "/files/a%5cb", "/files/C:%5cWindows",
        "/files//etc/passwd", "/files///x", "/files/%2fetc%2fpasswd", "/files/a/", "/files/a//b", "/files/",
        "/files/a%00b", "/files/%00", "/files/a%0d%0aSet-Cookie:x", "/files/a%7f", "/files/a%c2%85b",
        "/files/%c0%ae%c0%ae/x", "/files/%c0%af", "/files/%e0%80%ae%e0%80%ae", "/files/%ed%a0%80", "/files/%ff%fe",
        "/files/%e2%80%a4%e2%80%a4", "/files/%e2%80%a5", "/files/%ef%bc%8e%ef%bc%8e/x", "/files/%ef%b9%92%ef%b9%92",
        "/files/a%ef%bc%8f..%ef%bc%8fb", "/files/a%ef%bc%bcb", "/files/a%e2%88%95b", "/files/a%e2%81%84b",
        "/files/CON", "/files/con.txt", "/files/NUL", "/files/nul.tar.gz", "/files/COM1", "/files/LPT9.log",
        "/files/AUX%20", "/files/docs/PRN/x", "/files/COM%c2%b9", "/files/%43ON",
        "/files/" + new string('b', 256), "/files/" + string.Concat(Enumerable.Repeat("%c3%a9", 128)),
        "/files/" + string.Join('/', Enumerable.Repeat(new string('y', 220), 5)),
    };

    /// <summary>Names as a client means them, sent through every door that takes a name: PUT, multipart and tus.</summary>
    public static readonly string[] HostileNames =
    [
        "", "..", "../x", "a/../../b", ".", "...", ". .", "a/.. ", "/etc/passwd", "//x", "a/", "a//b",
        "%2e%2e", "%2e%2e/x", "%252e%252e", "a%2f..%2fb", "..\\..\\windows", "a\\b", "\\\\server\\share", "C:\\Windows\\win.ini",
        "a\0b", "\0", "a\r\nb", "a\u0085b", "a\u007fb",
        "\u2024\u2024", "\u2025", "\uFF0E\uFF0E/x", "\uFE52\uFE52", "a\uFF0F..\uFF0Fb", "a\uFF3Cb", "a\u2215b", "a\u2044b", "%c0%ae%c0%ae",
        "CON", "con.txt", "NUL", "nul.tar.gz", "COM1", "LPT9.log", "AUX ", "COM\u00B9", "docs/PRN/x",
        new string('x', 256), new string('é', 128), string.Join('/', Enumerable.Repeat(new string('y', 220), 5)),
        // Unicode format characters (Cf), which make a name read as another: bidi embeddings, overrides and
        // isolates, zero-width characters, the byte-order mark, and others of the category, written or escaped.
        "invoice\u202Efdp.exe", "a\u202Ab", "a\u202Bb", "a\u202Cb", "a\u202Db", "a\u2066b", "a\u2067b", "a\u2068b", "a\u2069b",
        "a\u200Bb", "a\u200Cb", "a\u200Db", "\uFEFFreport.pdf", "a\u00ADb", "a\u2060b", "a\u061Cb", "a\U000E0001b", "docs/\u202Ex",
        "invoice%E2%80%AEfdp.exe",
    ];

    public static TheoryData<int> NameIndexes => [.. Enumerable.Range(0, HostileNames.Length)];

    /// <summary>Multipart bodies that are malformed or truncated (label, content type, body).</summary>
    public static TheoryData<string, string, string> MalformedMultipart => new()
    {
        { "no boundary parameter", "multipart/form-data", Part("b", "f.bin") + "--b--\r\n" },
        { "boundary over 70 characters", "multipart/form-data; boundary=" + new string('b', 71), "" },
        { "empty boundary", "multipart/form-data; boundary=\"\"", "--\r\n" },
        { "body without the boundary", "multipart/form-data; boundary=b", "just some bytes" },
        { "truncated inside a part", "multipart/form-data; boundary=b", Part("b", "f.bin") + "no closing boundary" },
        { "truncated inside part headers", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"f\"; filen" },
        { "part headers that never end", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f.bin\"\r\n" },
        { "a part header over 16 KiB", "multipart/form-data; boundary=b", "--b\r\nX-Big: " + new string('h', 17 * 1024) + "\r\n\r\nx\r\n--b--\r\n" },
        { "too many part headers", "multipart/form-data; boundary=b", "--b\r\n" + string.Concat(Enumerable.Range(0, 30).Select(i => $"X-H{i}: v\r\n")) + "Content-Disposition: form-data; name=\"f\"; filename=\"f.bin\"\r\n\r\nx\r\n--b--\r\n" },
        { "no file part", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n--b--\r\n" },
        { "part without Content-Disposition", "multipart/form-data; boundary=b", "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n" },
        { "part with an invalid Content-Type", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f.bin\"\r\nContent-Type: not a type\r\n\r\nx\r\n--b--\r\n" },
        { "only the closing boundary", "multipart/form-data; boundary=b", "--b--\r\n" },
        { "multipart/mixed", "multipart/mixed; boundary=b", Part("b", "f.bin") + "x\r\n--b--\r\n" },
        { "not multipart", "application/json", "{\"file\":\"x\"}" },
    };

    /// <summary>Range headers on a 1,000-byte file: (header, status): garbage and unknown units are ignored (RFC 9110), unsatisfiable is 416.</summary>
    public static TheoryData<string, int> HostileRanges => new()
    {
        { "bytes=abc", 200 }, { "bytes=5-1", 200 }, { "bytes=", 200 }, { "items=0-1", 200 }, { "bytes=--1", 200 },
        { "bytes=1-2-3", 200 }, { "bytes=0-99999999999999999999999", 200 }, { "bytes=-99999999999999999999999", 200 },
        { "bytes=0-0," + string.Join(',', Enumerable.Range(1, 500).Select(i => $"{i}-{i}")), 200 },
        { "bytes=1000-", 416 }, { "bytes=5000-6000", 416 }, { "bytes=-0", 416 },
    };

    /// <summary>Upload-Offset values a PATCH may carry that are not a non-negative decimal integer.</summary>
    public static TheoryData<string> BadOffsets => ["-1", "abc", "1.5", "+0", "0x0", " 0 0", "99999999999999999999", "0,0", "", "1e3", "٠"];

    /// <summary>Upload-Length / Upload-Defer-Length headers at creation (name:value pairs separated by '|').</summary>
    public static TheoryData<string> BadCreationLengths =>
    [
        "Upload-Length:-1", "Upload-Length:abc", "Upload-Length:1e3", "Upload-Length:99999999999999999999",
        "Upload-Length:5|Upload-Length:6", "Upload-Length:5|Upload-Length:5", "Upload-Length:", "Upload-Length:٣",
        "Upload-Length:5|Upload-Defer-Length:1", "Upload-Defer-Length:0", "Upload-Defer-Length:2", "Upload-Defer-Length:yes", "",
    ];

    /// <summary>Upload-Metadata headers that are not valid (the filename is otherwise fine).</summary>
    public static TheoryData<string> BadMetadata =>
    [
        "filename !!!", "filename YQ", "filename YS5iaW4=,filename Yi5iaW4=", ",", "a b c", "filename YS5iaW4= extra",
        " YQ==", "filename", "filetype dGV4dC9wbGFpbg==", "filename YS5iaW4=,filetype bm90IGEgdHlwZQ==", "filename ....",
    ];

    /// <summary>Upload-Checksum headers that name an unknown algorithm or a malformed digest.</summary>
    public static TheoryData<string> BadChecksums =>
    [
        "crc32 AAAAAA==", "sha512 " + Convert.ToBase64String(new byte[64]), "sha1", "sha1 !!!", "sha1 AAAA",
        "md5 " + Convert.ToBase64String(new byte[20]), " ", "sha1  " + Convert.ToBase64String(new byte[20]) + " x",
    ];

    /// <summary>How many hostile inputs this suite sends (names go through three doors).</summary>
    public static int Count =>
        Size(HostileTargets) + 3 * HostileNames.Length + Size(MalformedMultipart) + Size(HostileRanges)
        + Size(BadOffsets) + Size(BadCreationLengths) + Size(BadMetadata) + Size(BadChecksums)
        + LyingLengthCases + TusStateCases;

    private static int Size(IEnumerable<object[]> data) => data.Count();

    private const int LyingLengthCases = 8; // the Content-Length tests below
    private const int TusStateCases = 8;    // PATCH after completion (2), past Upload-Length (2), concatenation (4)

    private Uri Server => service.Client.BaseAddress!;

    private static string NewUser() => "hostile-" + Guid.NewGuid().ToString("N");

    private static string Part(string boundary, string fileName) =>
        $"--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"{fileName}\"\r\n\r\n";

    [Fact]
    public void The_suite_counts_its_hostile_inputs()
    {
        output.WriteLine($"hostile inputs tried by {nameof(HostileInputTests)}: {Count}");
        Assert.True(Count >= 200, $"only {Count} hostile inputs");
    }

    [Theory]
    [MemberData(nameof(HostileTargets))]
    public async Task Put_to_a_hostile_target_is_refused(string target)
    {
        var user = NewUser();
        var response = await RawHttp.SendAsync(Server,
            $"PUT {target} HTTP/1.1\r\nHost: test\r\nX-User-Id: {user}\r\nContent-Length: 5\r\nConnection: close", "hello"u8.ToArray());

        AssertRefused(response, target);
        await AssertNothingStoredAsync(user);
    }

    [Theory]
    [MemberData(nameof(NameIndexes))]
    public async Task Put_of_a_hostile_name_is_refused(int index)
    {
        var user = NewUser();
        var target = "/files/" + string.Join('/', HostileNames[index].Split('/').Select(Uri.EscapeDataString));
        var response = await RawHttp.SendAsync(Server,
            $"PUT {target} HTTP/1.1\r\nHost: test\r\nX-User-Id: {user}\r\nContent-Length: 5\r\nConnection: close", "hello"u8.ToArray());

        AssertRefused(response, Printable(index));
        await AssertNothingStoredAsync(user);
    }

    [Theory]
    [MemberData(nameof(NameIndexes))]
    public async Task Multipart_part_with_a_hostile_filename_is_refused(int index)
    {
        var user = NewUser();
        var encoded = Uri.EscapeDataString(HostileNames[index]); // filename*: any string, exactly
        var body = $"--b\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''{encoded}\r\n\r\nhello\r\n--b--\r\n";
        using var content = new StringContent(body, Encoding.ASCII);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("multipart/form-data; boundary=b");
        using var request = Request(HttpMethod.Post, "/files", user, content);

        using var response = await service.Client.SendAsync(request);

        await AssertProblemAsync(response, Printable(index));
        await AssertNothingStoredAsync(user);
    }

    [Theory]
    [MemberData(nameof(NameIndexes))]
    public async Task Tus_upload_with_a_hostile_filename_is_refused(int index)
    {
        var user = NewUser();
        using var request = Tus(HttpMethod.Post, "/uploads", user);
        request.Headers.Add("Upload-Length", "5");
        request.Headers.Add("Upload-Metadata", "filename " + Convert.ToBase64String(Encoding.UTF8.GetBytes(HostileNames[index])));

        using var response = await service.Client.SendAsync(request);

        await AssertProblemAsync(response, Printable(index));
        await AssertNothingStoredAsync(user);
    }

    [Theory]
    [MemberData(nameof(MalformedMultipart))]
    public async Task Malformed_multipart_is_refused(string label, string contentType, string body)
    {
        var user = NewUser();
        using var content = new StringContent(body, Encoding.ASCII);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        using var request = Request(HttpMethod.Post, "/files", user, content);

        using var response = await service.Client.SendAsync(request);

        await AssertProblemAsync(response, label);
        await AssertNothingStoredAsync(user);
    }

    [Fact]
    public async Task A_body_shorter_than_its_Content_Length_is_refused_and_nothing_is_kept()
    {
        var user = NewUser();
        using var client = await RawHttp.ConnectAsync(Server);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(RawHttp.Signed($"PUT /files/short.bin HTTP/1.1\r\nHost: test\r\nX-User-Id: {user}\r\nContent-Length: 1000\r\n\r\n")));
        await stream.WriteAsync(new byte[500]);
        client.Client.Shutdown(System.Net.Sockets.SocketShutdown.Send); // the client says it is done: 500 bytes short

        var response = RawHttp.Parse(await RawHttp.ReadToEndAsync(stream, TimeSpan.FromSeconds(20)));

        // Kestrel may answer 400, or drop a connection whose body ended early; either way nothing is kept.
        Assert.True(response is null || response.Status == 400, $"unexpected {response?.Status}");
        await AssertNothingStoredAsync(user);
    }

    [Fact]
    public async Task A_multipart_body_shorter_than_its_Content_Length_is_refused_and_nothing_is_kept()
    {
        var user = NewUser();
        var body = Encoding.ASCII.GetBytes(Part("b", "cut.bin") + new string('x', 400));
        using var client = await RawHttp.ConnectAsync(Server);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(RawHttp.Signed(
            $"POST /files HTTP/1.1\r\nHost: test\r\nX-User-Id: {user}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 2000\r\n\r\n")));
        await stream.WriteAsync(body);
        client.Client.Shutdown(System.Net.Sockets.SocketShutdown.Send);

        var response = RawHttp.Parse(await RawHttp.ReadToEndAsync(stream, TimeSpan.FromSeconds(20)));

        Assert.True(response is null || response.Status == 400, $"unexpected {response?.Status}");
        await AssertNothingStoredAsync(user);
    }

    [Fact]
    public async Task A_body_longer_than_its_Content_Length_stores_only_the_declared_bytes_and_the_rest_is_a_bad_request()
    {
        var user = NewUser();
        using var client = await RawHttp.ConnectAsync(Server);
        var stream = client.GetStream();
        // 5 declared, 100 sent: the extra 95 bytes are read as the next request on the connection, which is garbage.
        await stream.WriteAsync(Encoding.ASCII.GetBytes(RawHttp.Signed($"PUT /files/long.bin HTTP/1.1\r\nHost: test\r\nX-User-Id: {user}\r\nContent-Length: 5\r\n\r\n")));
        await stream.WriteAsync(Encoding.ASCII.GetBytes("hello" + new string('!', 91) + "\r\n\r\n"));

        var raw = Encoding.ASCII.GetString(await RawHttp.ReadToEndAsync(stream, TimeSpan.FromSeconds(20)));

        Assert.StartsWith("HTTP/1.1 201", raw);
        Assert.Contains("HTTP/1.1 400", raw[12..]);
        var listed = await ListAsync(user);
        Assert.Equal(5, Assert.Single(listed).GetProperty("size").GetInt64());
        await AssertHealthyAsync();
    }

    [Theory]
    [InlineData("Content-Length: 5\r\nContent-Length: 6")]
    [InlineData("Content-Length: -1")]
    [InlineData("Content-Length: abc")]
    [InlineData("Content-Length: 99999999999999999999")]
    [InlineData("Content-Length: 5\r\nTransfer-Encoding: chunked")]
    public async Task Contradictory_or_invalid_framing_headers_are_refused(string framing)
    {
        var user = NewUser();
        var response = await RawHttp.SendAsync(Server,
            $"PUT /files/framed.bin HTTP/1.1\r\nHost: test\r\nX-User-Id: {user}\r\n{framing}\r\nConnection: close", "3\r\nabc\r\n0\r\n\r\n"u8.ToArray());

        if (framing.Contains("chunked", StringComparison.Ordinal) && response?.Status == 201)
        {
            // RFC 9112: Transfer-Encoding wins over Content-Length; the chunked body is the file, nothing more.
            Assert.Equal(3, Assert.Single(await ListAsync(user)).GetProperty("size").GetInt64());
            await AssertHealthyAsync();
            return;
        }

        AssertRefused(response, framing);
        await AssertNothingStoredAsync(user);
    }

    [Theory]
    [MemberData(nameof(HostileRanges))]
    public async Task Invalid_ranges_are_ignored_or_416_never_an_error(string range, int expected)
    {
        var user = NewUser();
        var bytes = Names.Bytes(1000);
        using (var put = await service.Client.SendAsync(Request(HttpMethod.Put, "/files/ranged.bin", user, new ByteArrayContent(bytes))))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);

        var response = await RawHttp.SendAsync(Server,
            $"GET /files/ranged.bin HTTP/1.1\r\nHost: test\r\nX-User-Id: {user}\r\nRange: {range}\r\nConnection: close");

        Assert.Equal(expected, response?.Status);
        if (expected == 200)
        {
            Assert.Equal(bytes.Length, response!.Body.Length == bytes.Length ? bytes.Length : int.Parse(response.Headers["content-length"]));
        }
        else
        {
            Assert.Equal("bytes */1000", response!.Headers["content-range"]);
        }

        await AssertHealthyAsync();
    }

    [Theory]
    [MemberData(nameof(BadOffsets))]
    public async Task Patch_with_a_bad_offset_is_400_and_changes_nothing(string offset)
    {
        var user = NewUser();
        var location = await CreateUploadAsync(user, 5);
        var response = await RawHttp.SendAsync(Server,
            $"PATCH {location} HTTP/1.1\r\nHost: test\r\nX-User-Id: {user}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n" +
            $"Content-Type: {TusProtocol.OffsetContentType}\r\nContent-Length: 5\r\nConnection: close", "hello"u8.ToArray());

        AssertRefused(response, offset);
        Assert.Equal(0, await OffsetAsync(user, location));
        await AssertNothingStoredAsync(user, uploadsToo: false);
    }

    [Theory]
    [MemberData(nameof(BadCreationLengths))]
    public async Task Creation_with_a_bad_or_duplicate_length_is_400_and_creates_nothing(string headers)
    {
        var user = NewUser();
        var lines = string.Concat(headers.Split('|', StringSplitOptions.RemoveEmptyEntries).Select(header => header.Replace(":", ": ", StringComparison.Ordinal) + "\r\n"));
        var response = await RawHttp.SendAsync(Server,
            $"POST /uploads HTTP/1.1\r\nHost: test\r\nX-User-Id: {user}\r\nTus-Resumable: 1.0.0\r\n{lines}" +
            $"Upload-Metadata: filename {Convert.ToBase64String("a.bin"u8)}\r\nContent-Length: 0\r\nConnection: close");

        AssertRefused(response, headers);
        await AssertNothingStoredAsync(user);
    }

    [Theory]
    [MemberData(nameof(BadMetadata))]
    public async Task Creation_with_malformed_metadata_is_400_and_creates_nothing(string metadata)
    {
        var user = NewUser();
        using var request = Tus(HttpMethod.Post, "/uploads", user);
        request.Headers.Add("Upload-Length", "5");
        request.Headers.TryAddWithoutValidation("Upload-Metadata", metadata);

        using var response = await service.Client.SendAsync(request);

        await AssertProblemAsync(response, metadata);
        await AssertNothingStoredAsync(user);
    }

    [Theory]
    [MemberData(nameof(BadChecksums))]
    public async Task Patch_with_an_unknown_or_malformed_checksum_is_400_and_changes_nothing(string checksum)
    {
        var user = NewUser();
        var location = await CreateUploadAsync(user, 5);
        using var patch = Tus(HttpMethod.Patch, location, user, "hello"u8.ToArray());
        patch.Headers.Add("Upload-Offset", "0");
        patch.Headers.TryAddWithoutValidation("Upload-Checksum", checksum);

        using var response = await service.Client.SendAsync(patch);

        await AssertProblemAsync(response, checksum);
        Assert.Equal(0, await OffsetAsync(user, location));
        await AssertNothingStoredAsync(user, uploadsToo: false);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public async Task Patch_after_completion_is_403_and_the_file_is_unchanged(int extraBytes)
    {
        var user = NewUser();
        var location = await CreateUploadAsync(user, 5);
        using (var patch = Tus(HttpMethod.Patch, location, user, "hello"u8.ToArray()))
        {
            patch.Headers.Add("Upload-Offset", "0");
            using var done = await service.Client.SendAsync(patch);
            Assert.Equal(HttpStatusCode.NoContent, done.StatusCode);
        }

        using var again = Tus(HttpMethod.Patch, location, user, Names.Bytes(extraBytes));
        again.Headers.Add("Upload-Offset", "5");
        using var response = await service.Client.SendAsync(again);

        await AssertProblemAsync(response, $"{extraBytes} more bytes", HttpStatusCode.Forbidden);
        var file = Assert.Single(await ListAsync(user));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData("hello"u8)), file.GetProperty("sha256").GetString());
        await AssertHealthyAsync();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_tus_body_past_Upload_Length_is_413_and_no_file_appears(bool atCreation)
    {
        var user = NewUser();
        var chunk = new StreamContent(new NonSeekableStream(Names.Bytes(50))); // chunked: no Content-Length to refuse up front
        chunk.Headers.ContentType = new MediaTypeHeaderValue(TusProtocol.OffsetContentType);
        HttpResponseMessage response;
        if (atCreation)
        {
            using var create = Tus(HttpMethod.Post, "/uploads", user);
            create.Headers.Add("Upload-Length", "10");
            create.Headers.Add("Upload-Metadata", "filename " + Convert.ToBase64String("a.bin"u8));
            create.Content = chunk;
            response = await service.Client.SendAsync(create);
        }
        else
        {
            var location = await CreateUploadAsync(user, 10);
            using var patch = Tus(HttpMethod.Patch, location, user);
            patch.Headers.Add("Upload-Offset", "0");
            patch.Content = chunk;
            response = await service.Client.SendAsync(patch);
        }

        using (response)
        {
            await AssertProblemAsync(response, atCreation ? "creation" : "patch", HttpStatusCode.RequestEntityTooLarge);
        }

        await AssertNothingStoredAsync(user, uploadsToo: false);
    }

    [Fact]
    public async Task Concatenating_another_users_partial_uploads_is_refused_and_leaves_them_alone()
    {
        var owner = NewUser();
        var thief = NewUser();
        var partial = await CreateUploadAsync(owner, 5, partial: true);
        using (var patch = Tus(HttpMethod.Patch, partial, owner, "hello"u8.ToArray()))
        {
            patch.Headers.Add("Upload-Offset", "0");
            using var done = await service.Client.SendAsync(patch);
            Assert.Equal(HttpStatusCode.NoContent, done.StatusCode);
        }

        foreach (var concat in new[] { $"final;{partial}", $"final;{Server}{partial.TrimStart('/')}", $"final;{partial} {partial}" })
        {
            using var final = Tus(HttpMethod.Post, "/uploads", thief);
            final.Headers.Add("Upload-Concat", concat);
            final.Headers.Add("Upload-Metadata", "filename " + Convert.ToBase64String("stolen.bin"u8));
            using var response = await service.Client.SendAsync(final);
            await AssertProblemAsync(response, concat);
        }

        await AssertNothingStoredAsync(thief);
        Assert.Equal(5, await OffsetAsync(owner, partial)); // still the owner's, untouched
    }

    [Fact]
    public async Task Concatenating_an_upload_that_is_not_a_partial_is_refused()
    {
        var user = NewUser();
        var whole = await CreateUploadAsync(user, 5);
        using var final = Tus(HttpMethod.Post, "/uploads", user);
        final.Headers.Add("Upload-Concat", $"final;{whole}");
        final.Headers.Add("Upload-Metadata", "filename " + Convert.ToBase64String("joined.bin"u8));

        using var response = await service.Client.SendAsync(final);

        await AssertProblemAsync(response, "a non-partial upload");
        Assert.Empty(await ListAsync(user));
        await AssertHealthyAsync();
    }

    private string Printable(int index) => Convert.ToHexString(Encoding.UTF8.GetBytes(HostileNames[index]));

    private static void AssertRefused(RawHttp.Response? response, string label)
    {
        Assert.True(response is not null, $"{label}: no answer");
        Assert.True(response.Status is >= 400 and < 500, $"{label}: {response.Status} {response.Body}");
        // Signed like the Durable Object's requests: the endpoint, not the signature check, must refuse it.
        Assert.True(response.Status != 401, $"{label}: stopped by the signature check, not by the service: {response.Body}");
        // Kestrel's own request parser answers malformed request lines and headers with an empty 4xx;
        // everything the service answers is problem details.
        Assert.True(response.ContentType?.StartsWith(ProblemJson, StringComparison.Ordinal) == true || response.Body.Length == 0,
            $"{label}: {response.Status} {response.ContentType} {response.Body}");
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, string label, HttpStatusCode? expected = null)
    {
        var body = await response.Content.ReadAsStringAsync();
        var status = (int)response.StatusCode;
        Assert.True(expected is null ? status is >= 400 and < 500 : response.StatusCode == expected, $"{label}: {status} {body}");
        Assert.True(status != 401, $"{label}: stopped by the signature check, not by the service: {body}");
        Assert.True(response.Content.Headers.ContentType?.MediaType == ProblemJson, $"{label}: {response.Content.Headers.ContentType} {body}");
    }

    /// <summary>
    /// No file listed, and no bytes on disk for the user (files, and tus uploads unless one was created on purpose).
    /// A request whose client went away may still be unwinding at the service when the client sees the connection
    /// end: what it staged must be gone within <see cref="CleanupDeadline"/>.
    /// </summary>
    private async Task AssertNothingStoredAsync(string user, bool uploadsToo = true)
    {
        Assert.Empty(await ListAsync(user));
        var left = LeftOnDisk(user, uploadsToo);
        for (var until = DateTime.UtcNow + CleanupDeadline; left.Length > 0 && DateTime.UtcNow < until; await Task.Delay(50))
        {
            left = LeftOnDisk(user, uploadsToo);
        }

        Assert.Empty(left);
        await AssertHealthyAsync();
    }

    private static readonly TimeSpan CleanupDeadline = TimeSpan.FromSeconds(10);

    private string[] LeftOnDisk(string user, bool uploadsToo)
    {
        var key = Names.StoreKey(user);
        var folders = uploadsToo ? new[] { Path.Combine("users", key), Path.Combine("uploads", key) } : [Path.Combine("users", key)];
        return folders.Select(folder => Path.Combine(service.StorageRoot, folder)).Where(Directory.Exists)
            .SelectMany(folder => Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
            .Concat(Directory.EnumerateFiles(Path.Combine(service.StorageRoot, "tmp")))
            .ToArray();
    }

    private async Task AssertHealthyAsync()
    {
        using var health = await service.Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    private async Task<JsonElement[]> ListAsync(string user)
    {
        using var response = await service.Client.SendAsync(Request(HttpMethod.Get, "/files", user));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("files").EnumerateArray().ToArray();
    }

    private static HttpRequestMessage Request(HttpMethod method, string url, string user, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method, url) { Content = content };
        request.Headers.Add("X-User-Id", user);
        return request;
    }

    private static HttpRequestMessage Tus(HttpMethod method, string path, string user, byte[]? body = null)
    {
        var request = Request(method, path, user);
        request.Headers.Add("Tus-Resumable", "1.0.0");
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue(TusProtocol.OffsetContentType);
        }

        return request;
    }

    private async Task<string> CreateUploadAsync(string user, long length, bool partial = false)
    {
        using var request = Tus(HttpMethod.Post, "/uploads", user);
        request.Headers.Add("Upload-Length", length.ToString());
        if (partial)
        {
            request.Headers.Add("Upload-Concat", "partial");
        }
        else
        {
            request.Headers.Add("Upload-Metadata", "filename " + Convert.ToBase64String("a.bin"u8));
        }

        using var response = await service.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return response.Headers.Location!.AbsolutePath;
    }

    private async Task<long> OffsetAsync(string user, string location)
    {
        using var head = await service.Client.SendAsync(Tus(HttpMethod.Head, location, user));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        return long.Parse(head.Headers.GetValues("Upload-Offset").Single());
    }
}
