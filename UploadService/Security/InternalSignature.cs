using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace UploadService.Security;

/// <summary>
/// The proof that a request comes from the user's Durable Object: an HMAC-SHA256, keyed by
/// <c>INTERNAL_SECRET</c>, over the request's timestamp, method (as sent, with any
/// <c>X-HTTP-Method-Override</c>), request target (path and query exactly as on the wire) and user id.
/// The Worker computes the same string in worker/src/internal-signature.ts; both test suites pin it to
/// one known vector. Self-contained on purpose: the benchmark compiles this file in to sign its direct requests.
/// </summary>
public static class InternalSignature
{
    public const string TimestampHeader = "X-Internal-Timestamp";
    public const string SignatureHeader = "X-Internal-Signature";
    public const string SecretSetting = "INTERNAL_SECRET";
    public const int MinSecretLength = 32;

    /// <summary>Signature format version; the header value is <c>v1=&lt;lowercase hex&gt;</c>.</summary>
    private const string Version = "v1";

    /// <summary>The exact bytes both sides sign, one field per line.</summary>
    public static string CanonicalString(long timestamp, string method, string? methodOverride, string target, string userId) =>
        string.Join('\n', Version, timestamp.ToString(CultureInfo.InvariantCulture), method, methodOverride ?? "", target, userId);

    public static string Compute(byte[] key, long timestamp, string method, string? methodOverride, string target, string userId)
    {
        var mac = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(CanonicalString(timestamp, method, methodOverride, target, userId)));
        return $"{Version}={Convert.ToHexStringLower(mac)}";
    }

    /// <summary>Constant-time comparison of a presented header value with the expected one.</summary>
    public static bool Matches(string expected, string presented) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(presented));

    /// <summary>
    /// Signs a request the way the Durable Object does, for clients that talk to the service directly (tests,
    /// the benchmark). Call it last: it signs the method, target, override and user id the request has now.
    /// </summary>
    public static void Sign(HttpRequestMessage request, byte[] key)
    {
        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var methodOverride = request.Headers.TryGetValues("X-HTTP-Method-Override", out var overrides) ? string.Join(", ", overrides) : null;
        var userId = request.Headers.TryGetValues("X-User-Id", out var users) ? string.Join(", ", users) : "";
        request.Headers.Remove(TimestampHeader);
        request.Headers.Remove(SignatureHeader);
        request.Headers.Add(TimestampHeader, timestamp.ToString(CultureInfo.InvariantCulture));
        request.Headers.Add(SignatureHeader, Compute(key, timestamp, request.Method.Method, methodOverride, request.RequestUri!.PathAndQuery, userId));
    }

    /// <summary>Signs every request sent through it (see <see cref="Sign"/>).</summary>
    public sealed class SigningHandler(string secret, HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        private readonly byte[] _key = Encoding.UTF8.GetBytes(secret);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Sign(request, _key);
            return base.SendAsync(request, cancellationToken);
        }
    }
}
