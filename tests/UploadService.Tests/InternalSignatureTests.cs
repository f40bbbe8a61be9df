using System.Globalization;
using System.Net;
using System.Text;
using UploadService.Domain;
using UploadService.Security;

namespace UploadService.Tests;

/// <summary>Only requests signed by the Durable Object reach the endpoints; the health probes stay open.</summary>
public sealed class InternalSignatureTests(UploadServiceFactory service) : IClassFixture<UploadServiceFactory>
{
    private static readonly byte[] Key = Encoding.UTF8.GetBytes(UploadServiceFactory.InternalSecret);

    [Fact]
    public void The_signature_matches_the_vector_the_worker_tests_pin()
    {
        // Computed independently (Python's hmac) and pinned in worker/test/internal-signature.test.ts too.
        var signature = InternalSignature.Compute(
            Encoding.UTF8.GetBytes("0123456789abcdef0123456789abcdef"), 1700000000, "POST", "PATCH", "/uploads/abc%20d?x=1", "alice");
        Assert.Equal("v1=c1450572f5c8c647e564c52bbbd62c6a535ae4b2dac34b1a35ad92f50cd37496", signature);
    }

    [Fact]
    public async Task A_signed_request_is_served()
    {
        using var response = await service.Client.SendAsync(Put("/files/signed.txt", "alice"));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
    }

    [Fact]
    public async Task A_request_straight_to_the_port_with_a_forged_user_id_is_401_and_writes_nothing()
    {
        using var response = await service.UnsignedClient.SendAsync(Put("/files/forged.txt", "alice"));
        await AssertUnauthorized(response, "not signed");
        await AssertNotStored("/files/forged.txt", "alice");
    }

    public static TheoryData<string, Func<HttpRequestMessage, long, string>> Tampered => new()
    {
        { "another user", (request, ts) => Sign(request, ts, userId: "mallory") },
        { "another path", (request, ts) => Sign(request, ts, target: "/files/other.txt") },
        { "another method", (request, ts) => Sign(request, ts, method: "DELETE") },
        { "a method override added after signing", (request, ts) => Sign(request, ts, methodOverride: "DELETE") },
        { "another query", (request, ts) => Sign(request, ts, target: "/files/tampered.txt?x=1") },
        { "another secret", (request, ts) => InternalSignature.Compute(
            Encoding.UTF8.GetBytes(new string('k', InternalSignature.MinSecretLength)), ts, "PUT", null, "/files/tampered.txt", "alice") },
        { "a signature in another format", (request, ts) => Sign(request, ts).Replace("v1=", "v2=", StringComparison.Ordinal) },
        { "a truncated signature", (request, ts) => Sign(request, ts)[..^2] },
    };

    [Theory]
    [MemberData(nameof(Tampered))]
    public async Task A_signature_over_anything_else_is_401(string what, Func<HttpRequestMessage, long, string> sign)
    {
        var request = Put("/files/tampered.txt", "alice");
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        request.Headers.Add(InternalSignature.TimestampHeader, now.ToString(CultureInfo.InvariantCulture));
        request.Headers.Add(InternalSignature.SignatureHeader, sign(request, now));

        using var response = await service.UnsignedClient.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"a signature over {what}: {(int)response.StatusCode}");
        await AssertUnauthorized(response, "does not match");
        await AssertNotStored("/files/tampered.txt", "alice");
    }

    [Theory]
    [InlineData(-301)]
    [InlineData(301)]
    [InlineData(-86400)]
    public async Task A_timestamp_outside_the_clock_skew_is_401(int offsetSeconds)
    {
        var request = Put("/files/stale.txt", "alice");
        var then = DateTimeOffset.UtcNow.ToUnixTimeSeconds() + offsetSeconds;
        request.Headers.Add(InternalSignature.TimestampHeader, then.ToString(CultureInfo.InvariantCulture));
        request.Headers.Add(InternalSignature.SignatureHeader, Sign(request, then));

        using var response = await service.UnsignedClient.SendAsync(request);
        await AssertUnauthorized(response, "clock");
    }

    [Theory]
    [InlineData("")]
    [InlineData("soon")]
    [InlineData("-5")]
    [InlineData("1e9")]
    [InlineData("99999999999999999999999")]
    public async Task A_malformed_timestamp_is_401(string timestamp)
    {
        var request = Put("/files/malformed.txt", "alice");
        request.Headers.TryAddWithoutValidation(InternalSignature.TimestampHeader, timestamp);
        request.Headers.Add(InternalSignature.SignatureHeader, Sign(request, DateTimeOffset.UtcNow.ToUnixTimeSeconds()));

        using var response = await service.UnsignedClient.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Theory]
    [InlineData("/health")]
    [InlineData("/alive")]
    public async Task Health_probes_need_no_signature(string path)
    {
        using var response = await service.UnsignedClient.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [InlineData("")]
    [InlineData("too-short")]
    public void The_service_refuses_to_start_without_a_proper_secret(string secret)
    {
        using var factory = UploadServiceFactory.WithSettings(new Dictionary<string, string>
        {
            [InternalSignature.SecretSetting] = secret,
        });
        var error = Assert.ThrowsAny<Exception>(() => factory.UnsignedClient);
        Assert.Contains(InternalSignature.SecretSetting, error.ToString(), StringComparison.Ordinal);
    }

    private static HttpRequestMessage Put(string path, string userId)
    {
        var request = new HttpRequestMessage(HttpMethod.Put, path) { Content = new ByteArrayContent("hello"u8.ToArray()) };
        request.Headers.Add(UserId.HeaderName, userId);
        return request;
    }

    private static string Sign(
        HttpRequestMessage request, long timestamp, string? method = null, string? methodOverride = null, string? target = null, string? userId = null) =>
        InternalSignature.Compute(Key, timestamp, method ?? request.Method.Method, methodOverride, target ?? request.RequestUri!.OriginalString,
            userId ?? request.Headers.GetValues(UserId.HeaderName).Single());

    private static async Task AssertUnauthorized(HttpResponseMessage response, string reason)
    {
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(reason, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private async Task AssertNotStored(string path, string userId)
    {
        var get = new HttpRequestMessage(HttpMethod.Get, path);
        get.Headers.Add(UserId.HeaderName, userId);
        using var response = await service.Client.SendAsync(get);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}
