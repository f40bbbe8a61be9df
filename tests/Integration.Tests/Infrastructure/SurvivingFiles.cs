using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;

namespace Integration.Tests;

/// <summary>
/// Files of every kind stored before a fault (a plain PUT, multipart parts, a finished and an unfinished tus
/// upload), and the check that afterwards exactly the completed ones are there, intact, and nothing partial.
/// </summary>
public static class SurvivingFiles
{
    private const int MiB = 1 << 20;

    /// <summary>A plain PUT, two multipart parts and a finished tus upload, under <c>done/</c>.</summary>
    public static async Task<List<StoredFile>> StoreAsync(HttpClient client)
    {
        var stored = new List<StoredFile>();
        using (var put = await client.PutAsync("/files/done/put.bin", new ByteArrayContent(TestContent.RandomBytes(3 * MiB + 1))))
        {
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
            stored.Add((await put.Content.ReadFromJsonAsync<StoredFile>())!);
        }

        using (var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(TestContent.RandomBytes(64 * 1024)), "file", "a.txt" },
            { new ByteArrayContent(TestContent.RandomBytes(2 * MiB + 3)), "file", "b.bin" },
        })
        using (var post = await client.PostAsync("/files?prefix=done/", form))
        {
            Assert.Equal(HttpStatusCode.Created, post.StatusCode);
            stored.AddRange((await post.Content.ReadFromJsonAsync<MultipartResult>())!.Files);
        }

        var tus = new SeededBytes(5 * MiB + 7, seed: Random.Shared.Next());
        var location = await Tus.CreateAsync(client, tus.Length, "done/tus.bin");
        using (var first = await Tus.PatchAsync(client, location, 0, tus.Range(0, 2 * MiB)))
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        using (var rest = await Tus.PatchAsync(client, location, 2 * MiB, tus.Range(2 * MiB, tus.Length - 2 * MiB)))
            Assert.Equal(HttpStatusCode.NoContent, rest.StatusCode);
        var finished = await TestContent.WaitForFileAsync(client, "done/tus.bin");
        Assert.Equal(tus.Sha256Hex(), finished.Sha256);
        stored.Add(finished);
        return stored;
    }

    /// <summary>A tus upload with part of its bytes stored and no request in flight.</summary>
    public sealed record UnfinishedUpload(Uri Location, SeededBytes Bytes, long Offset, string Name)
    {
        /// <summary>Resumes at the stored offset, sends the rest, and returns the completed file.</summary>
        public async Task<StoredFile> FinishAsync(HttpClient client)
        {
            Assert.Equal(Offset, await Tus.OffsetAsync(client, Location));
            using (var rest = await Tus.PatchAsync(client, Location, Offset, Bytes.Range(Offset, Bytes.Length - Offset)))
                Assert.Equal(HttpStatusCode.NoContent, rest.StatusCode);
            var file = await TestContent.WaitForFileAsync(client, Name);
            Assert.Equal(Bytes.Sha256Hex(), file.Sha256);
            return file;
        }
    }

    /// <summary>Creates <c>unfinished/tus.bin</c> and stores its first 2 MiB (of 6).</summary>
    public static async Task<UnfinishedUpload> StartUnfinishedTusUploadAsync(HttpClient client)
    {
        var bytes = new SeededBytes(6 * MiB + 1, seed: Random.Shared.Next());
        const string Name = "unfinished/tus.bin";
        var location = await Tus.CreateAsync(client, bytes.Length, Name);
        using (var first = await Tus.PatchAsync(client, location, 0, bytes.Range(0, 2 * MiB)))
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        return new UnfinishedUpload(location, bytes, 2 * MiB, Name);
    }

    public static async Task AssertNotStoredAsync(HttpClient client, string name)
    {
        Assert.DoesNotContain(name, (await TestContent.ListAsync(client)).Files.Select(f => f.Name));
        using var get = await client.GetAsync("/files/" + name);
        await TestContent.AssertProblemAsync(get, HttpStatusCode.NotFound);
    }

    /// <summary>
    /// The listing holds these files and no others, each with its recorded size and sha256, and each reads
    /// back in full with that sha256 (the body hashed, and as the ETag).
    /// </summary>
    public static async Task AssertExactlyTheseIntactAsync(HttpClient client, IReadOnlyList<StoredFile> expected)
    {
        var listed = (await TestContent.ListAsync(client)).Files;
        Assert.Equal(expected.Select(f => f.Name).Order(StringComparer.Ordinal), listed.Select(f => f.Name));
        foreach (var file in expected)
        {
            var entry = listed.Single(f => f.Name == file.Name);
            Assert.Equal((file.Size, file.Sha256), (entry.Size, entry.Sha256));

            using var get = await client.GetAsync("/files/" + file.Name, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
            Assert.Equal($"\"{file.Sha256}\"", get.Headers.ETag?.Tag);
            await using var body = await get.Content.ReadAsStreamAsync();
            Assert.Equal(file.Sha256, Convert.ToHexStringLower(await SHA256.HashDataAsync(body)));
        }
    }
}
