using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace UploadService.Security;

/// <summary>
/// A validated file name: a relative path of '/'-separated segments, chosen by the client.
/// It is the one sanitizer every client-supplied name goes through. A valid name is only ever
/// metadata and a hash input; stores never turn it into a path on disk.
/// </summary>
public sealed record FileName
{
    public const int MaxBytes = 1024;
    public const int MaxSegmentBytes = 255;
    public const char Separator = '/';

    private FileName(string value) => Value = value;

    public string Value { get; }

    public override string ToString() => Value;

    public static bool TryParse(
        string? candidate,
        [NotNullWhen(true)] out FileName? name,
        [NotNullWhen(false)] out string? error)
    {
        name = null;
        error = Check(candidate);
        if (error is not null)
        {
            return false;
        }

        name = new FileName(candidate!);
        return true;
    }

    /// <summary>Joins an optional folder prefix (with or without a trailing '/') and a name, then validates the result.</summary>
    public static bool TryParse(
        string? folder,
        string? candidate,
        [NotNullWhen(true)] out FileName? name,
        [NotNullWhen(false)] out string? error)
    {
        if (string.IsNullOrEmpty(folder))
        {
            return TryParse(candidate, out name, out error);
        }

        var trimmed = folder.EndsWith(Separator) ? folder[..^1] : folder;
        return TryParse(trimmed + Separator + candidate, out name, out error);
    }

    private static string? Check(string? candidate)
    {
        if (string.IsNullOrEmpty(candidate))
        {
            return "The file name is empty.";
        }

        // Names are taken literally: "%2e%2e" is a valid three-character-pair name, not "..".
        for (var i = 0; i < candidate.Length; i++)
        {
            var c = candidate[i];
            if (char.IsControl(c))
            {
                return "The file name contains a control character.";
            }

            if (c == '\\')
            {
                return "The file name contains a backslash; use '/' between folders.";
            }

            if (char.IsHighSurrogate(c) && i + 1 < candidate.Length && char.IsLowSurrogate(candidate[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(c))
            {
                return "The file name is not valid UTF-16 (unpaired surrogate).";
            }
        }

        if (Encoding.UTF8.GetByteCount(candidate) > MaxBytes)
        {
            return $"The file name is longer than {MaxBytes} bytes (UTF-8).";
        }

        if (candidate[0] == Separator)
        {
            return "The file name must be relative (no leading '/').";
        }

        foreach (var segment in candidate.Split(Separator))
        {
            if (segment.Length == 0)
            {
                return "The file name has an empty segment ('//' or a trailing '/').";
            }

            if (segment is "." or "..")
            {
                return "The file name has a '.' or '..' segment.";
            }

            if (Encoding.UTF8.GetByteCount(segment) > MaxSegmentBytes)
            {
                return $"A segment of the file name is longer than {MaxSegmentBytes} bytes (UTF-8).";
            }
        }

        return null;
    }
}
