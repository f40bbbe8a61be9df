using System.Buffers;
using System.Diagnostics.CodeAnalysis;

namespace UploadService.Domain;

/// <summary>
/// The user whose namespace a request works in, as the Worker asserts it in <see cref="HeaderName"/>.
/// The header is covered by the Durable Object's signature (<see cref="InternalSignatureCheck"/>), so it can't be forged.
/// The value may be "." or "..": stores must derive directory names from it, never use it raw.
/// </summary>
public sealed record UserId
{
    public const string HeaderName = "X-User-Id";
    public const int MaxLength = 128;

    private static readonly SearchValues<char> Allowed =
        SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");

    private UserId(string value) => Value = value;

    public string Value { get; }

    public override string ToString() => Value;

    /// <summary>
    /// Binds an endpoint's <see cref="UserId"/> parameter from <see cref="HeaderName"/>: a missing, repeated or
    /// invalid header ends the request with 400 problem details that say why (<c>BadRequestHandler</c>).
    /// </summary>
    public static ValueTask<UserId?> BindAsync(HttpContext context)
    {
        var values = context.Request.Headers[HeaderName];
        if (values.Count > 1)
        {
            throw new BadHttpRequestException($"The {HeaderName} header must appear once.");
        }

        return TryParse(values.ToString(), out var user, out var error)
            ? ValueTask.FromResult<UserId?>(user)
            : throw new BadHttpRequestException(error);
    }

    public static bool TryParse(
        string? candidate,
        [NotNullWhen(true)] out UserId? userId,
        [NotNullWhen(false)] out string? error)
    {
        userId = null;
        if (string.IsNullOrEmpty(candidate))
        {
            error = $"The {HeaderName} header is missing or empty.";
            return false;
        }

        if (candidate.Length > MaxLength)
        {
            error = $"The {HeaderName} header is longer than {MaxLength} characters.";
            return false;
        }

        if (candidate.AsSpan().ContainsAnyExcept(Allowed))
        {
            error = $"The {HeaderName} header may contain only A-Z, a-z, 0-9, '.', '_' and '-'.";
            return false;
        }

        error = null;
        userId = new UserId(candidate);
        return true;
    }
}
