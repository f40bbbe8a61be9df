using System.Buffers;
using System.Diagnostics.CodeAnalysis;

namespace UploadService.Security;

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
