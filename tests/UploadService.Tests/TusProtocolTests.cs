using System.Text;
using UploadService.Domain;
using UploadService.Storage;
using UploadService.Tus;

namespace UploadService.Tests;

public sealed class TusProtocolTests
{
    private static string B64(string value) => Convert.ToBase64String(Encoding.UTF8.GetBytes(value));

    [Fact]
    public void Metadata_parses_pairs_and_empty_values()
    {
        Assert.True(TusProtocol.TryParseMetadata($"filename {B64("a/ü.txt")}, filetype {B64("text/plain")},is_confidential", out var metadata, out _));
        Assert.Equal("a/ü.txt", metadata["filename"]);
        Assert.Equal("text/plain", metadata["filetype"]);
        Assert.Equal("", metadata["is_confidential"]);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    public void Metadata_may_be_absent(string? header)
    {
        Assert.True(TusProtocol.TryParseMetadata(header, out var metadata, out _));
        Assert.Empty(metadata);
    }

    [Theory]
    [InlineData("filename !!!")]
    [InlineData("filename YQ== extra")]
    [InlineData("a YQ==,a Yg==")]
    [InlineData("a  YQ==")]
    [InlineData("a YQ==,,b Yg==")]
    public void Metadata_rejects_malformed_headers(string header)
    {
        Assert.False(TusProtocol.TryParseMetadata(header, out _, out var error));
        Assert.StartsWith("Upload-Metadata", error);
    }

    [Fact]
    public void Metadata_round_trips_through_the_formatter()
    {
        var pairs = new Dictionary<string, string> { ["filename"] = "x/y z.bin", ["filetype"] = "application/x-y" };
        Assert.True(TusProtocol.TryParseMetadata(TusClientHeaders.Metadata(pairs), out var parsed, out _));
        Assert.Equal(pairs, parsed);
    }

    [Theory]
    [InlineData("sha1", 20)]
    [InlineData("sha256", 32)]
    [InlineData("md5", 16)]
    [InlineData("SHA1", 20)]
    public void Checksum_accepts_the_advertised_algorithms(string algorithm, int size)
    {
        var digest = Enumerable.Range(0, size).Select(i => (byte)i).ToArray();
        Assert.True(TusProtocol.TryParseChecksum($"{algorithm} {Convert.ToBase64String(digest)}", out var checksum, out _));
        Assert.Equal(algorithm.ToLowerInvariant(), checksum.Algorithm);
        Assert.Equal(digest, checksum.Expected);
    }

    [Theory]
    [InlineData("crc32 AAAAAA==")]
    [InlineData("sha1")]
    [InlineData("sha1 not-base64!")]
    [InlineData("sha1 AAAA")] // wrong digest size
    [InlineData("")]
    public void Checksum_rejects_unsupported_or_malformed_values(string header)
    {
        Assert.False(TusProtocol.TryParseChecksum(header, out _, out var error));
        Assert.NotEmpty(error);
    }

    [Fact]
    public void Concat_parses_partial_and_final_with_absolute_and_relative_urls()
    {
        Assert.True(TusProtocol.TryParseConcat("partial", out var partial, out var none, out _));
        Assert.True(partial);
        Assert.Null(none);

        const string a = "0123456789abcdef0123456789abcdef", b = "fedcba9876543210fedcba9876543210";
        Assert.True(TusProtocol.TryParseConcat($"final;https://files.example/uploads/{a} /uploads/{b}", out partial, out var ids, out _));
        Assert.False(partial);
        Assert.Equal([a, b], ids);
    }

    [Theory]
    [InlineData("final;")]
    [InlineData("final;/uploads/xyz")]
    [InlineData("final;/files/0123456789abcdef0123456789abcdef")]
    [InlineData("partial;x")]
    [InlineData("whole")]
    public void Concat_rejects_malformed_values(string header)
    {
        Assert.False(TusProtocol.TryParseConcat(header, out _, out _, out var error));
        Assert.NotEmpty(error);
    }

    [Theory]
    [InlineData("0", true, 0L)]
    [InlineData("5368709120", true, 5368709120L)]
    [InlineData("-1", false, 0L)]
    [InlineData("+1", false, 0L)]
    [InlineData(" 1", false, 0L)]
    [InlineData("1.0", false, 0L)]
    [InlineData("", false, 0L)]
    [InlineData(null, false, 0L)]
    public void Lengths_are_plain_non_negative_integers(string? value, bool ok, long expected)
    {
        Assert.Equal(ok, TusProtocol.TryParseLength(value, out var length));
        if (ok)
        {
            Assert.Equal(expected, length);
        }
    }

    [Fact]
    public void Upload_ids_are_32_lowercase_hex_digits()
    {
        Assert.True(UploadId.TryParse(UploadId.New().Value, out _));
        Assert.False(UploadId.TryParse("0123456789ABCDEF0123456789ABCDEF", out _));
        Assert.False(UploadId.TryParse("../../etc/passwd", out _));
        Assert.False(UploadId.TryParse(null, out _));
        Assert.Throws<InvalidDataException>(() => UploadId.Stored("0123456789abcdef0123456789abcde"));
    }
}

public sealed class TusRulesTests
{
    private static readonly DateTimeOffset Now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private const long Max = 1000;

    private static TusUploadInfo Upload(long? length = 100, long offset = 10, bool partial = false, IReadOnlyList<string>? finalOf = null) =>
        new("0123456789abcdef0123456789abcdef", length, offset, null, partial, finalOf, Now.AddHours(-1), Now.AddHours(1),
            partial ? null : "f.bin", partial ? null : "application/octet-stream");

    [Fact]
    public void Accepts_a_chunk_at_the_current_offset_and_allows_the_remaining_bytes()
    {
        Assert.Equal(TusAppendDecision.Accept, TusRules.CheckAppend(Upload(), Now, 10, null, 50, Max, out var next));
        Assert.Equal(90, TusRules.MaxChunkBytes(next, Max));
        Assert.Equal(Upload(), next);
    }

    [Fact]
    public void Refuses_what_tus_forbids()
    {
        Assert.Equal(TusAppendDecision.NotFound, TusRules.CheckAppend(null, Now, 0, null, 1, Max, out _));
        Assert.Equal(TusAppendDecision.Expired, TusRules.CheckAppend(Upload(), Now.AddHours(1), 10, null, 1, Max, out _));
        Assert.Equal(TusAppendDecision.Forbidden, TusRules.CheckAppend(Upload(finalOf: ["a"]), Now, 10, null, 1, Max, out _));
        Assert.Equal(TusAppendDecision.Committed, TusRules.CheckAppend(Upload(offset: 100) with { IsCommitted = true }, Now, 100, null, 0, Max, out _));
        Assert.Equal(TusAppendDecision.OffsetMismatch, TusRules.CheckAppend(Upload(), Now, 9, null, 1, Max, out _));
        Assert.Equal(TusAppendDecision.OffsetMismatch, TusRules.CheckAppend(Upload(), Now, 11, null, 1, Max, out _));
        Assert.Equal(TusAppendDecision.TooLarge, TusRules.CheckAppend(Upload(), Now, 10, null, 91, Max, out _));
        Assert.Equal(TusAppendDecision.LengthConflict, TusRules.CheckAppend(Upload(), Now, 10, 200, 1, Max, out _));
    }

    [Fact]
    public void A_deferred_length_is_settled_once_within_the_limit()
    {
        var deferred = Upload(length: null);
        Assert.Equal(TusAppendDecision.Accept, TusRules.CheckAppend(deferred, Now, 10, null, 5, Max, out var unsettled));
        Assert.Equal(Max - 10, TusRules.MaxChunkBytes(unsettled, Max));
        Assert.Equal(TusAppendDecision.Accept, TusRules.CheckAppend(deferred, Now, 10, 30, 20, Max, out var settled));
        Assert.Equal(30, settled.Length);
        Assert.Equal(20, TusRules.MaxChunkBytes(settled, Max));
        Assert.Equal(TusAppendDecision.LengthConflict, TusRules.CheckAppend(deferred, Now, 10, 9, 0, Max, out _));
        Assert.Equal(TusAppendDecision.TooLarge, TusRules.CheckAppend(deferred, Now, 10, Max + 1, 0, Max, out _));
        Assert.Equal(TusAppendDecision.Accept, TusRules.CheckAppend(Upload(), Now, 10, 100, 0, Max, out _)); // same length again
    }

    [Fact]
    public void Only_complete_non_partial_uploads_await_their_commit()
    {
        Assert.True(Upload(offset: 100).AwaitsCommit);
        Assert.False(Upload(offset: 99).AwaitsCommit);
        Assert.False(Upload(length: null, offset: 100).AwaitsCommit);
        Assert.False(Upload(offset: 100, partial: true).AwaitsCommit);
        Assert.False((Upload(offset: 100) with { IsCommitted = true }).AwaitsCommit);
    }
}
