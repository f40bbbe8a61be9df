using System.Globalization;
using System.Net;
using System.Text;
using CsCheck;
using UploadService.Domain;
using UploadService.Tus;
using Xunit.Abstractions;

namespace UploadService.Tests;

/// <summary>
/// Property-based tests (CsCheck): random and adversarial inputs for the name validator, the tus header
/// parsers and the service's Range handling. Every property runs a fixed number of iterations (printed, with
/// the seed CsCheck reports on failure to replay it); a failing input is shrunk to a small counterexample.
/// </summary>
public sealed class PropertyTests(ITestOutputHelper output)
{
    public const int NameIterations = 50_000;
    public const int ParserIterations = 20_000;
    public const int RangeIterations = 1_000;

    private static readonly string Root = Path.GetFullPath(Path.Combine(Path.GetTempPath(), "property-root"));

    /// <summary>Pieces that make up traversal and lookalike spellings; random concatenations of them find the gaps.</summary>
    private static readonly string[] Tokens =
    [
        ".", "..", "/", "\\", "%", "%2e", "%2E", "%2f", "%5c", "%25", "%00", "%c0%ae", "%e2%80%a4", "%ef%bc%8e", "\u2024", "\u2025",
        "\uFF0E", "\uFF0F", "\uFF3C", "\u2215", "\uFE52", "CON", "nul", "COM1", "com\u00B9", ".txt", " ", "a", "é", "e\u0301", "\0",
        "\r\n", "\u0085", "\ud83d\ude00", "\ud800", ":", "~",
    ];

    private static readonly Gen<string> AnyString = Gen.Char.Array[0, 40].Select(chars => new string(chars));

    private static readonly Gen<string> TokenString = Gen.Int[0, Tokens.Length - 1].Array[0, 12].Select(picks => string.Concat(picks.Select(i => Tokens[i])));

    private static readonly Gen<string> Candidate = Gen.Frequency((1, AnyString), (3, TokenString));

    /// <summary>Names built only from safe pieces: letters (any script, NFC), digits, '-', '_', '.', spaces; 5 × 31 characters at most.</summary>
    private static readonly Gen<string> SafeName =
        Gen.Char["abcXYZ019-_éüж文 ."].Array[0, 30]
            .Select(chars => "f" + new string(chars))
            .Array[1, 5]
            .Select(segments => string.Join('/', segments));

    private void Run<T>(string property, Gen<T> gen, Action<T> assert, int iterations)
    {
        gen.Sample(assert, iter: iterations, writeLine: output.WriteLine);
        output.WriteLine($"{property}: {iterations} iterations passed");
    }

    [Fact]
    public void Name_validation_never_throws_and_an_accepted_name_never_leaves_the_users_root()
    {
        var accepted = 0;
        var refused = 0;
        Run(nameof(Name_validation_never_throws_and_an_accepted_name_never_leaves_the_users_root), Candidate, candidate =>
        {
            if (!FileName.TryParse(candidate, out var name, out var error))
            {
                Assert.False(string.IsNullOrEmpty(error));
                Interlocked.Increment(ref refused);
                return;
            }

            Interlocked.Increment(ref accepted);

            var value = name.Value;
            Assert.True(value.IsNormalized(NormalizationForm.FormC));
            Assert.DoesNotContain(value, char.IsControl);
            Assert.All(value.Split('/'), segment => Assert.NotEmpty(segment.TrimEnd('.', ' '))); // Windows would drop it
            // However a client later reads the name (as is, compatibility-folded, percent-decoded, with
            // Windows' trimming of trailing dots and spaces), it stays below the folder it is saved in.
            foreach (var reading in Readings(value))
            {
                var full = Path.GetFullPath(Path.Combine(Root, reading));
                Assert.True(full.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal), $"{value} read as {reading} → {full}");
            }
        }, NameIterations);
        output.WriteLine($"names accepted: {accepted}, refused: {refused}");
        Assert.True(accepted > NameIterations / 20 && refused > NameIterations / 20, "the generator must exercise both outcomes");
    }

    [Fact]
    public void Accepted_names_are_stable_and_safe_names_round_trip_unchanged()
    {
        Run("accepted names parse to themselves", Candidate, candidate =>
        {
            if (FileName.TryParse(candidate, out var name, out _))
            {
                Assert.True(FileName.TryParse(name.Value, out var again, out var error), error);
                Assert.Equal(name, again);
            }
        }, NameIterations);
        Run("safe names round-trip", SafeName, candidate =>
        {
            Assert.True(FileName.TryParse(candidate, out var name, out var error), $"{candidate}: {error}");
            Assert.Equal(candidate, name.Value);
        }, ParserIterations);
        Run("folder + name is the joined name", Gen.Select(SafeName, SafeName), pair =>
        {
            var (folder, candidate) = pair;
            Assert.True(FileName.TryParse(folder, candidate, out var joined, out _));
            Assert.True(FileName.TryParse(folder + "/", candidate, out var slashed, out _));
            Assert.Equal(folder + "/" + candidate, joined.Value);
            Assert.Equal(joined, slashed);
        }, ParserIterations);
    }

    [Fact]
    public void Lengths_and_offsets_parse_only_plain_non_negative_integers_and_round_trip()
    {
        Run("random Upload-Length/Upload-Offset values", Gen.Frequency((1, AnyString), (1, Gen.String["0123456789+-., e\u0663"])), value =>
        {
            if (TusProtocol.TryParseLength(value, out var length))
            {
                Assert.True(length >= 0);
                Assert.All(value, c => Assert.True(char.IsAsciiDigit(c), value));
            }
        }, ParserIterations);
        Run("format then parse a length", Gen.Long[0, long.MaxValue], length =>
        {
            Assert.True(TusProtocol.TryParseLength(length.ToString(CultureInfo.InvariantCulture), out var parsed));
            Assert.Equal(length, parsed);
        }, ParserIterations);
    }

    [Fact]
    public void Metadata_parsing_never_throws_and_formatted_metadata_round_trips()
    {
        Run("random Upload-Metadata", Gen.Frequency((1, AnyString), (2, Gen.String["ab =,YQ+/\t"])), header =>
        {
            if (TusProtocol.TryParseMetadata(header, out var metadata, out var error))
            {
                Assert.All(metadata.Keys, key => Assert.False(key.Length == 0 || key.Contains(' ') || key.Contains(',')));
            }
            else
            {
                Assert.False(string.IsNullOrEmpty(error));
            }
        }, ParserIterations);

        var key = Gen.String["abcdefghijklmnopqrstuvwxyzABC0123456789_-."].Where(k => k.Length > 0);
        var value = Gen.Char.Where(c => !char.IsSurrogate(c)).Array[0, 30].Select(chars => new string(chars));
        Run("format then parse metadata", Gen.Dictionary(key, value)[0, 6], pairs =>
        {
            Assert.True(TusProtocol.TryParseMetadata(TusClientHeaders.Metadata(pairs), out var parsed, out var error), error);
            Assert.Equal(pairs.OrderBy(p => p.Key, StringComparer.Ordinal), parsed.OrderBy(p => p.Key, StringComparer.Ordinal));
        }, ParserIterations);
    }

    [Fact]
    public void Checksum_parsing_never_throws_and_formatted_checksums_round_trip()
    {
        Run("random Upload-Checksum", Gen.Frequency((1, AnyString), (2, Gen.String["sha1256md ABC+/=x"])), header =>
        {
            if (TusProtocol.TryParseChecksum(header, out var checksum, out _))
            {
                Assert.Contains(checksum.Algorithm, TusProtocol.ChecksumAlgorithms);
                _ = checksum.CreateHash(); // an accepted algorithm can always hash
            }
        }, ParserIterations);

        var algorithm = Gen.Int[0, 2].Select(i => (Name: TusProtocol.ChecksumAlgorithms[i], Size: new[] { 20, 32, 16 }[i]));
        Run("format then parse a checksum", algorithm.SelectMany(a => Gen.Byte.Array[a.Size].Select(digest => (a.Name, digest))), pair =>
        {
            Assert.True(TusProtocol.TryParseChecksum(TusClientHeaders.Checksum(pair.Name, pair.digest), out var parsed, out var error), error);
            Assert.Equal(pair.Name, parsed.Algorithm);
            Assert.Equal(pair.digest, parsed.Expected);
        }, ParserIterations);
    }

    [Fact]
    public void Concat_parsing_never_throws_and_formatted_finals_round_trip()
    {
        Run("random Upload-Concat", Gen.Frequency((1, AnyString), (2, Gen.String["final;partial/uploads:htp0a1 "])), header =>
        {
            if (TusProtocol.TryParseConcat(header, out var isPartial, out var ids, out _) && !isPartial)
            {
                Assert.NotEmpty(ids!);
                Assert.All(ids!, id => Assert.True(UploadId.TryParse(id, out _)));
            }
        }, ParserIterations);

        var id = Gen.Guid.Select(guid => guid.ToString("N"));
        var url = Gen.Select(id, Gen.Int[0, 2], (upload, form) => form switch
        {
            0 => "/uploads/" + upload,
            1 => "https://files.example.com/uploads/" + upload,
            _ => "http://127.0.0.1:8787/api/uploads/" + upload,
        });
        Run("format then parse a final", url.Array[1, 8], urls =>
        {
            Assert.True(TusProtocol.TryParseConcat("final;" + string.Join(' ', urls), out var isPartial, out var ids, out var error), error);
            Assert.False(isPartial);
            Assert.Equal(urls.Select(u => u[(u.LastIndexOf('/') + 1)..]), ids!);
        }, ParserIterations);
    }

    [Fact]
    public async Task Any_Range_header_gets_the_whole_file_the_exact_slice_or_416()
    {
        using var service = new UploadServiceFactory();
        var bytes = Names.Bytes(1000);
        using (var put = new HttpRequestMessage(HttpMethod.Put, "/files/ranged.bin") { Content = new ByteArrayContent(bytes) })
        {
            put.Headers.Add("X-User-Id", "ranges");
            using var created = await service.Client.SendAsync(put);
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        var number = Gen.Frequency((4, Gen.Long[0, 1200].Select(n => n.ToString(CultureInfo.InvariantCulture))), (1, Gen.String["0123456789-"]));
        var spec = Gen.Frequency(
            (3, Gen.Select(number, number, (first, last) => $"{first}-{last}")),
            (1, number.Select(first => first + "-")),
            (1, number.Select(suffix => "-" + suffix)),
            (1, Gen.String["bytes=0123456789-, "]));
        var header = Gen.Frequency(
            (4, spec.Array[1, 3].Select(specs => "bytes=" + string.Join(',', specs))),
            (1, AnyString.Where(s => s.All(c => c is >= ' ' and <= '~'))));

        var iterations = 0;
        await header.SampleAsync(async range =>
        {
            Interlocked.Increment(ref iterations);
            using var request = new HttpRequestMessage(HttpMethod.Get, "/files/ranged.bin");
            request.Headers.Add("X-User-Id", "ranges");
            request.Headers.TryAddWithoutValidation("Range", range);
            using var response = await service.Client.SendAsync(request);
            var body = await response.Content.ReadAsByteArrayAsync();
            switch (response.StatusCode)
            {
                case HttpStatusCode.OK:
                    Assert.Equal(bytes, body);
                    break;
                case HttpStatusCode.PartialContent:
                    var content = response.Content.Headers.ContentRange!;
                    Assert.Equal(1000, content.Length);
                    Assert.Equal(bytes[(int)content.From!.Value..((int)content.To!.Value + 1)], body);
                    break;
                case HttpStatusCode.RequestedRangeNotSatisfiable:
                    Assert.Equal("bytes */1000", response.Content.Headers.ContentRange?.ToString());
                    break;
                default:
                    Assert.Fail($"Range '{range}': {(int)response.StatusCode}");
                    break;
            }
        }, iter: RangeIterations, writeLine: output.WriteLine);
        output.WriteLine($"Range headers: {iterations} requests, each 200 with the file, 206 with its exact slice, or 416");
    }

    /// <summary>How clients may read a stored name when they turn it into a path.</summary>
    private static IEnumerable<string> Readings(string name)
    {
        yield return name;
        yield return name.Normalize(NormalizationForm.FormKC);
        var decoded = name;
        for (var i = 0; i < 4; i++)
        {
            decoded = Uri.UnescapeDataString(decoded);
        }

        yield return decoded.Normalize(NormalizationForm.FormKC).Replace('\\', '/');
        yield return string.Join('/', name.Split('/').Select(segment => segment.TrimEnd('.', ' ')));
    }
}
