using UploadService.Domain;

namespace UploadService.Tests;

public class FileNameTests
{
    public static TheoryData<string> ValidNames => new()
    {
        "a",
        "report.pdf",
        "docs/2024/report.pdf",
        "a b/c d.txt",
        ".hidden",
        "..hidden",
        "a..b",
        "100%.txt",          // a percent sign that escapes nothing
        "report%20final.pdf",
        "CONSOLE.txt",       // only the device names themselves are reserved
        "con-artist/nullable.cs",
        "ＡＢＣ.txt",          // fullwidth letters are letters
        "café.txt",          // NFC
        "C:",                // a colon is just a character here
        "ünïcødé/文件.txt",
        "emoji-😀.png",
        "trailing.dot.",
        " leading-space",
        new string('x', 255),
        NameOfExactlyMaxBytes,
    };

    public static TheoryData<string?, string> InvalidNames => new()
    {
        { null, "empty" },
        { "", "empty" },
        { "/", "relative" },
        { "/etc/passwd", "relative" },
        { "//server/share", "relative" },
        { "a/", "empty segment" },
        { "a//b", "empty segment" },
        { ".", "'.' or '..'" },
        { "..", "'.' or '..'" },
        { "../secret", "'.' or '..'" },
        { "a/../../b", "'.' or '..'" },
        { "a/./b", "'.' or '..'" },
        { "a/..", "'.' or '..'" },
        { "a\\b", "backslash" },
        { "..\\..\\windows", "backslash" },
        { "C:\\temp\\x", "backslash" },
        { "a\0b", "control" },
        { "\0", "control" },
        { "a\nb", "control" },
        { "a\rb", "control" },
        { "tab\there", "control" },
        { "bell\u0007", "control" },
        { "del\u007f", "control" },
        { "c1\u0085", "control" },
        { new string('x', 256), "255 bytes" },
        { new string('é', 128), "255 bytes" }, // 128 chars, 256 UTF-8 bytes
        { string.Join('/', Enumerable.Repeat(new string('y', 200), 6)), "1024 bytes" },
        { "...", "only dots and spaces" },
        { "invoice\u202Efdp.exe", "U+202E" },
        { "\uFEFFreport.pdf", "U+FEFF" },
        { "a\u200Db", "format character" },
        { "a\u2066b", "format character" },
        { "tag\U000E0041", "U+E0041" },
        { "invoice%E2%80%AEfdp.exe", "escaped invisible format character" },
        { ". .", "only dots and spaces" },
        { "a/.. ", "only dots and spaces" },
        { "%2e%2e", "only dots and spaces" },
        { "%2E%2E/etc", "only dots and spaces" },
        { "%252e%252e", "only dots and spaces" },
        { "%25252e%25252e", "only dots and spaces" },
        { "%2e%2e/%2fetc", "only dots and spaces" },
        { "a%2F..%2Fb", "'/'" },
        { "%5c..%5cwindows", "'/'" },
        { "a%00b", "control" },
        { "%c0%ae%c0%ae/etc", "not valid UTF-8" },
        { "%C0%AF", "not valid UTF-8" },
        { "%e0%80%ae", "not valid UTF-8" },
        { "%ed%a0%80", "not valid UTF-8" },   // a surrogate, UTF-8 encoded
        { "%ff%fe", "not valid UTF-8" },
        { "\u2024\u2024", "only dots and spaces" },       // one dot leader, twice
        { "\u2025", "only dots and spaces" },              // two dot leader
        { "\uFF0E\uFF0E/secret", "only dots and spaces" }, // fullwidth full stop
        { "\uFE52\uFE52", "only dots and spaces" },       // small full stop
        { "a\uFF0F..\uFF0Fb", "'/'" },                     // fullwidth solidus
        { "a\uFF3Cb", "'/'" },                             // fullwidth reverse solidus
        { "a\u2215b", "'/'" },                             // division slash
        { "a\u2044b", "'/'" },                             // fraction slash
        { "%25EF%25BC%258E%25EF%25BC%258E", "only dots and spaces" }, // U+FF0E, percent-encoded twice
        { "CON", "device name" },
        { "con.txt", "device name" },
        { "docs/NUL/x", "device name" },
        { "nul.tar.gz", "device name" },
        { "AUX ", "device name" },
        { "COM1", "device name" },
        { "lpt9.log", "device name" },
        { "COM\u00B9", "device name" },                    // superscript one: COM1 on Windows
        { "CONOUT$", "device name" },
        { "%43ON", "device name" },                         // percent-encoded C
        { "%252525252e", "more than three times" },
    };

    [Fact]
    public void Names_are_kept_in_NFC_so_an_NFD_spelling_names_the_same_file()
    {
        Assert.True(FileName.TryParse("cafe\u0301/re\u0301sume\u0301.txt", out var decomposed, out var error), error);
        Assert.True(FileName.TryParse("caf\u00e9/r\u00e9sum\u00e9.txt", out var composed, out error), error);

        Assert.Equal(composed, decomposed);
        Assert.True(decomposed.Value.IsNormalized(System.Text.NormalizationForm.FormC));
    }

    [Theory]
    [MemberData(nameof(ValidNames))]
    public void Valid_names_are_accepted_unchanged(string candidate)
    {
        Assert.True(FileName.TryParse(candidate, out var name, out var error), error);
        Assert.Equal(candidate, name.Value);
    }

    [Theory]
    [MemberData(nameof(InvalidNames))]
    public void Invalid_names_are_rejected_with_a_reason(string? candidate, string reasonFragment)
    {
        Assert.False(FileName.TryParse(candidate, out var name, out var error));
        Assert.Null(name);
        Assert.Contains(reasonFragment, error);
    }

    // Not theory data: xUnit's serialization of test cases would replace lone surrogates with U+FFFD.
    [Fact]
    public void Names_with_unpaired_surrogates_are_rejected()
    {
        Assert.False(FileName.TryParse("lone\ud800high", out _, out var error));
        Assert.Contains("surrogate", error);
        Assert.False(FileName.TryParse("lone\udc00low", out _, out _));
        Assert.False(FileName.TryParse("ends-high\ud83d", out _, out _));
        Assert.False(FileName.TryParse("swapped\ude00\ud83d", out _, out _));
        Assert.True(FileName.TryParse("paired\ud83d\ude00", out _, out _));
    }

    // Three 255-byte segments, one of 254, one of 1, four separators: 1024 bytes.
    private static readonly string NameOfExactlyMaxBytes =
        string.Join('/', new string('a', 255), new string('a', 255), new string('a', 255), new string('a', 254), "b");

    [Fact]
    public void Name_of_exactly_the_byte_limit_is_accepted_and_one_more_byte_is_not()
    {
        Assert.Equal(FileName.MaxBytes, System.Text.Encoding.UTF8.GetByteCount(NameOfExactlyMaxBytes));
        Assert.True(FileName.TryParse(NameOfExactlyMaxBytes, out _, out _));
        Assert.False(FileName.TryParse(NameOfExactlyMaxBytes + "c", out _, out var error));
        Assert.Contains("1024 bytes", error);
    }

    [Theory]
    [InlineData(null, "a.txt", "a.txt")]
    [InlineData("", "a.txt", "a.txt")]
    [InlineData("docs", "a.txt", "docs/a.txt")]
    [InlineData("docs/", "a.txt", "docs/a.txt")]
    [InlineData("docs/2024", "a.txt", "docs/2024/a.txt")]
    public void Folder_and_name_are_joined_then_validated(string? folder, string candidate, string expected)
    {
        Assert.True(FileName.TryParse(folder, candidate, out var name, out var error), error);
        Assert.Equal(expected, name.Value);
    }

    [Theory]
    [InlineData("..", "a.txt")]
    [InlineData("docs//", "a.txt")]
    [InlineData("/abs", "a.txt")]
    [InlineData("docs", "../a.txt")]
    [InlineData("docs", "")]
    [InlineData("docs", "a\\b")]
    public void Folder_and_name_that_combine_into_an_invalid_name_are_rejected(string folder, string candidate)
    {
        Assert.False(FileName.TryParse(folder, candidate, out _, out _));
    }
}
