using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;

namespace Integration.Tests;

public sealed record StoredFile(string Name, long Size, string Sha256, string ContentType, DateTimeOffset CreatedAt);
public sealed record FileList(List<StoredFile> Files, string? NextCursor);
public sealed record MultipartResult(List<StoredFile> Files);

/// <summary>Bodies and checks shared by the tests.</summary>
public static class TestContent
{
    public static byte[] RandomBytes(int length) => RandomNumberGenerator.GetBytes(length);

    public static string Sha256Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    public static string UniqueUser(string who) => $"{who}-{Guid.NewGuid():N}";

    public static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"expected {(int)expected}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = System.Text.Json.JsonDocument.Parse(body).RootElement;
        Assert.Equal((int)expected, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("title").GetString()));
    }

    public const long OneGiB = 1L << 30;

    /// <summary>
    /// PUTs a generated gigabyte through the Worker, checks the reported size and sha256, reads it back as a
    /// stream and hashes it (so the stored bytes are checked, not only the reported hash), then deletes it.
    /// </summary>
    public static async Task RoundTripOneGiBAsync(HttpClient client, int seed)
    {
        using var content = new GeneratedContent(OneGiB, seed);

        using var put = await client.PutAsync("/files/big/one-gib.bin", content);
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        var stored = (await put.Content.ReadFromJsonAsync<StoredFile>())!;
        Assert.Equal(OneGiB, stored.Size);
        Assert.Equal(content.Sha256Hex, stored.Sha256);

        using var get = await client.GetAsync("/files/big/one-gib.bin", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        await using var body = await get.Content.ReadAsStreamAsync();
        Assert.Equal(content.Sha256Hex, Convert.ToHexStringLower(await SHA256.HashDataAsync(body)));

        using var delete = await client.DeleteAsync("/files/big/one-gib.bin");
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
    }

    /// <summary>How long a poll waits for something that happens on the system's own schedule.</summary>
    public static readonly TimeSpan PollDeadline = TimeSpan.FromSeconds(60);

    public static Task WaitUntilAsync(Func<bool> condition, string what) => WaitUntilAsync(() => Task.FromResult(condition()), what);

    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + PollDeadline;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out after {PollDeadline.TotalSeconds} s waiting until {what}");
            await Task.Delay(50);
        }
    }

    /// <summary>Polls the listing until <paramref name="name"/> is in it, and returns its entry.</summary>
    public static async Task<StoredFile> WaitForFileAsync(HttpClient client, string name)
    {
        StoredFile? file = null;
        await WaitUntilAsync(async () => (file = (await ListAsync(client, name)).Files.SingleOrDefault(f => f.Name == name)) is not null,
            $"{name} is listed");
        return file!;
    }

    public static async Task<FileList> ListAsync(HttpClient client, string? prefix = null)
    {
        var url = prefix is null ? "/files" : $"/files?prefix={Uri.EscapeDataString(prefix)}";
        using var response = await client.GetAsync(url);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<FileList>())!;
    }
}

/// <summary>
/// A request body of a given length made on the fly from a seeded generator, hashed while it is sent, so a
/// gigabyte can be uploaded without holding it in the test's memory or on disk.
/// </summary>
public sealed class GeneratedContent(long length, int seed = 1) : HttpContent
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public string Sha256Hex { get; private set; } = "";

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        var random = new Random(seed);
        var buffer = new byte[1 << 20];
        for (long sent = 0; sent < length;)
        {
            var n = (int)Math.Min(buffer.Length, length - sent);
            random.NextBytes(buffer.AsSpan(0, n));
            _hash.AppendData(buffer, 0, n);
            await stream.WriteAsync(buffer.AsMemory(0, n));
            sent += n;
        }
        Sha256Hex = Convert.ToHexStringLower(_hash.GetHashAndReset());
    }

    protected override bool TryComputeLength(out long result)
    {
        result = length;
        return true;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _hash.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>A body that claims a length, sends part of it and then fails: the connection is cut mid-upload.</summary>
public sealed class AbortingContent(long declaredLength, int bytesBeforeAbort) : HttpContent
{
    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        await stream.WriteAsync(TestContent.RandomBytes(bytesBeforeAbort));
        await stream.FlushAsync();
        throw new IOException("client aborted the upload on purpose");
    }

    protected override bool TryComputeLength(out long result)
    {
        result = declaredLength;
        return true;
    }
}
