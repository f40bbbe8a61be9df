using System.Diagnostics.CodeAnalysis;

namespace UploadService.Domain;

/// <summary>
/// A tus upload's id: 32 lowercase hex digits (a random GUID without dashes), issued by the service. Ids
/// arrive in URLs, so they are checked before they name anything in storage; they are unique across users.
/// </summary>
public sealed record UploadId
{
    private UploadId(string value) => Value = value;

    public string Value { get; }

    public override string ToString() => Value;

    public static UploadId New() => new(Guid.NewGuid().ToString("N"));

    public static bool TryParse([NotNullWhen(true)] string? candidate, [NotNullWhen(true)] out UploadId? id)
    {
        id = candidate is { Length: 32 } && candidate.All(char.IsAsciiHexDigitLower) ? new UploadId(candidate) : null;
        return id is not null;
    }

    /// <summary>An id the store wrote itself (its state, its keys); throws when it is not one.</summary>
    public static UploadId Stored(string value) =>
        TryParse(value, out var id) ? id : throw new InvalidDataException($"'{value}' is not an upload id.");
}
