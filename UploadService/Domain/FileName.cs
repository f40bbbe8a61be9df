using System.Buffers;
using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace UploadService.Domain;

/// <summary>
/// A validated file name: a relative path of '/'-separated segments, chosen by the client.
/// It is the one sanitizer every client-supplied name goes through. A valid name is only ever
/// metadata and a hash input; stores never turn it into a path on disk. It is also refused when it
/// would turn into something else where a client materialises it (a download saved on Windows, a sync
/// client, a tool that decodes it once more): every segment is checked as written, in compatibility form
/// (NFKC: U+2024 or U+FF0E become '.', U+FF0F '/'), and percent-decoded (repeatedly: <c>%2e</c>,
/// <c>%252e</c>), and must not become '.', '..', a run of dots and spaces (which Windows trims away),
/// contain '/', '\' or a control character, or be a Windows device name (CON, NUL, COM1, ...; with
/// any extension). Unicode format characters (category Cf: bidi controls, zero-width characters, U+FEFF)
/// are refused too, written or escaped: they make a name read as another (<c>invoice\u202Efdp.exe</c> shows
/// as <c>invoiceexe.pdf</c>). Escapes that are not valid UTF-8 (the overlong <c>%c0%ae</c>) are refused outright.
/// Names are kept in Unicode normalization form C: an NFD spelling names the same file as the NFC one.
/// </summary>
public sealed partial record FileName
{
    public const int MaxBytes = 1024;
    public const int MaxSegmentBytes = 255;
    public const char Separator = '/';

    private FileName(string value) => Value = value;

    public string Value { get; }

    public override string ToString() => Value;

    /// <summary>A name the service validated before it stored it (a tus upload's destination); throws when it is not one.</summary>
    public static FileName Stored(string value) =>
        TryParse(value, out var name, out var error) ? name : throw new InvalidDataException($"Stored file name '{value}' is invalid: {error}");

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

        name = new FileName(candidate!.Normalize(NormalizationForm.FormC));
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

    private static readonly FrozenSet<string> DeviceNames = new[]
    {
        "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
        "COM0", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
        "LPT0", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>Slashes that NFKC leaves alone but that read as '/' or '\\' (division, fraction, big solidus; reverse solidus operators).</summary>
    private static readonly SearchValues<char> SlashLookalikes = SearchValues.Create("\u2215\u2044\u29F8\u29F9\u29F5");


    /// <summary>How many rounds of percent-decoding a segment gets (%252e is two).</summary>
    private const int DecodeRounds = 3;

    [GeneratedRegex("%[89A-Fa-f][0-9A-Fa-f]")]
    private static partial Regex InvalidUtf8Escape();

    private static string? Check(string? candidate)
    {
        if (string.IsNullOrEmpty(candidate))
        {
            return "The file name is empty.";
        }

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

            var pair = char.IsHighSurrogate(c) && i + 1 < candidate.Length && char.IsLowSurrogate(candidate[i + 1]);
            if (!pair && char.IsSurrogate(c))
            {
                return "The file name is not valid UTF-16 (unpaired surrogate).";
            }

            if (CharUnicodeInfo.GetUnicodeCategory(candidate, i) == UnicodeCategory.Format)
            {
                return $"The file name contains the invisible format character U+{char.ConvertToUtf32(candidate, i):X4}: {FormatCharacterReason}";
            }

            if (pair)
            {
                i++;
            }
        }

        // Valid UTF-16 from here, so normalization cannot fail; the rules apply to the name as it is kept.
        var normalized = candidate.Normalize(NormalizationForm.FormC);
        if (Encoding.UTF8.GetByteCount(normalized) > MaxBytes)
        {
            return $"The file name is longer than {MaxBytes} bytes (UTF-8).";
        }

        if (normalized[0] == Separator)
        {
            return "The file name must be relative (no leading '/').";
        }

        foreach (var segment in normalized.Split(Separator))
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

            if (CheckSpellings(segment) is { } error)
            {
                return error;
            }
        }

        return null;
    }

    private const string FormatCharacterReason =
        "bidi controls (U+202A-U+202E, U+2066-U+2069), zero-width characters (U+200B-U+200D), U+FEFF and the other " +
        "Unicode format characters (category Cf) change how a name reads without being seen, so names may not contain them.";

    private static bool HasFormatCharacter(string text)
    {
        foreach (var rune in text.EnumerateRunes())
        {
            if (Rune.GetUnicodeCategory(rune) == UnicodeCategory.Format) return true;
        }
        return false;
    }

    /// <summary>The segment as written, in compatibility form, and percent-decoded: none may be dangerous.</summary>
    private static string? CheckSpellings(string segment)
    {
        var form = segment;
        for (var round = 0; round <= DecodeRounds; round++)
        {
            form = form.Normalize(NormalizationForm.FormKC);
            if (form.Contains(Separator) || form.Contains('\\') || form.AsSpan().ContainsAny(SlashLookalikes))
            {
                return "A segment of the file name has a character that stands for '/' or '\\' (a lookalike or a percent-escape).";
            }

            if (form.Any(char.IsControl))
            {
                return "A segment of the file name has an escaped control character.";
            }

            if (HasFormatCharacter(form))
            {
                return $"A segment of the file name has an escaped invisible format character: {FormatCharacterReason}";
            }

            if (form.TrimEnd('.', ' ').Length == 0)
            {
                return "A segment of the file name is, or stands for, only dots and spaces ('.', '..', a lookalike or a percent-escape).";
            }

            if (DeviceNames.Contains(form.Split('.')[0].TrimEnd(' ')))
            {
                return "A segment of the file name is a Windows device name (CON, PRN, AUX, NUL, COM0-9, LPT0-9).";
            }

            var decoded = Uri.UnescapeDataString(form);
            if (decoded == form)
            {
                // Escapes of bytes that are not valid UTF-8 stay escaped; a lenient decoder might still read an
                // overlong form (%c0%ae) as '.', so they are refused.
                return InvalidUtf8Escape().IsMatch(form)
                    ? "A segment of the file name has a percent-escape that is not valid UTF-8 (such as the overlong %c0%ae)."
                    : null;
            }

            if (round == DecodeRounds)
            {
                return "A segment of the file name is percent-encoded more than three times over.";
            }

            form = decoded;
        }

        return null;
    }
}
