using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using Xunit.Abstractions;

namespace Integration.Tests;

/// <summary>
/// The default storage, as production runs it: each instance reaches R2 (wrangler dev's emulation, persisted under
/// the local data root) only through its own Durable Object's outbound handler (worker/src/storage-gateway.ts), with
/// no storage key in its environment and only its own user's keys within reach.
/// </summary>
[Collection(PerUserAppCollection.Name)]
public sealed class StorageThroughDurableObjectTests(PerUserAppFixture app, ITestOutputHelper output) : IAsyncLifetime
{
    private const int MiB = 1 << 20;

    public Task InitializeAsync() => app.WaitUntilNoInstanceRunsAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task The_file_api_and_tus_work_on_R2_behind_the_Durable_Object()
    {
        var user = TestContent.UniqueUser("r2");
        using var client = app.CreateWorkerClient(user);

        // Larger than one 16 MiB part: a multipart upload through the handler.
        var file = TestContent.RandomBytes(20 * MiB + 5);
        using (var put = await client.PutAsync("/files/big.bin", new ByteArrayContent(file)))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        Assert.Equal(TestContent.Sha256Hex(await client.GetByteArrayAsync("/files/big.bin")), TestContent.Sha256Hex(file));
        using (var range = new HttpRequestMessage(HttpMethod.Get, "/files/big.bin") { Headers = { Range = new(17 * MiB, 17 * MiB + 9) } })
        using (var partial = await client.SendAsync(range))
        {
            Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
            Assert.Equal(file.AsSpan(17 * MiB, 10).ToArray(), await partial.Content.ReadAsByteArrayAsync());
        }

        // tus: a creation, then two PATCHes, the first ending inside a part (its tail is kept as an object).
        var upload = new SeededBytes(7 * MiB + 3, seed: 22);
        var location = await Tus.CreateAsync(client, upload.Length, "resumed.bin", "application/octet-stream");
        using (var first = await Tus.PatchAsync(client, location, 0, upload.Range(0, 3 * MiB)))
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        Assert.Equal(3 * MiB, await Tus.OffsetAsync(client, location));
        using (var last = await Tus.PatchAsync(client, location, 3 * MiB, upload.Range(3 * MiB, upload.Length - 3 * MiB)))
            Assert.Equal(HttpStatusCode.NoContent, last.StatusCode);

        var listed = await client.GetFromJsonAsync<FileList>("/files");
        Assert.Equal(["big.bin", "resumed.bin"], listed!.Files.Select(f => f.Name).Order());
        Assert.Equal(upload.Sha256Hex(), listed.Files.Single(f => f.Name == "resumed.bin").Sha256);

        using (var delete = await client.DeleteAsync("/files/big.bin"))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using (var gone = await client.GetAsync("/files/big.bin"))
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);

        // The bytes are in the R2 emulation under the local data root, not in any instance's folder.
        var r2 = Path.Combine(app.DataRoot, "wrangler", "v3", "r2", "upload-files");
        Assert.True(Directory.Exists(r2) && Directory.EnumerateFiles(r2, "*", SearchOption.AllDirectories).Any(), $"nothing in {r2}");
        Assert.False(Directory.Exists(Path.Combine(app.DataRoot, "s3")), "a local S3 server ran");
    }

    [Fact]
    public async Task An_instance_holds_no_storage_key_and_is_refused_every_key_but_its_users()
    {
        var (alice, bob) = (TestContent.UniqueUser("alice"), TestContent.UniqueUser("bob"));
        using var aliceClient = app.CreateWorkerClient(alice);
        using var bobClient = app.CreateWorkerClient(bob);
        using (var put = await aliceClient.PutAsync("/files/mine.txt", new StringContent("alice's")))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        using (var put = await bobClient.PutAsync("/files/secret.txt", new StringContent("bob's")))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);

        var aliceEnvironment = PerUserAppFixture.EnvironmentOf(app.RunningInstance(alice)!);
        var bobEnvironment = PerUserAppFixture.EnvironmentOf(app.RunningInstance(bob)!);
        // No credential of any kind: the S3 keys are a placeholder nobody checks, no OTLP headers, no Worker secret.
        Assert.Equal("no-key-the-durable-object-answers", aliceEnvironment["Storage__S3__AccessKeyId"]);
        Assert.Equal("no-key-the-durable-object-answers", aliceEnvironment["Storage__S3__SecretAccessKey"]);
        Assert.DoesNotContain("OTEL_EXPORTER_OTLP_HEADERS", aliceEnvironment.Keys);
        Assert.DoesNotContain(aliceEnvironment.Values, value => value.Contains(app.AuthSecret) || value.Contains(app.DashboardApiKey));

        // Acting as alice's instance: its own storage route, S3 requests for bob's keys.
        var storage = aliceEnvironment["Storage__S3__ServiceUrl"];
        using var http = new HttpClient();
        var aliceRecord = $"{storage}/files/users/{Key(alice)}/files/{Key("mine.txt")}";
        var bobRecord = $"{storage}/files/users/{Key(bob)}/files/{Key("secret.txt")}";
        using (var own = await http.GetAsync(aliceRecord))
        {
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
            Assert.Contains("\"mine.txt\"", await own.Content.ReadAsStringAsync());
        }
        foreach (var request in new[]
        {
            new HttpRequestMessage(HttpMethod.Get, bobRecord),
            new HttpRequestMessage(HttpMethod.Put, bobRecord) { Content = new StringContent("{}") },
            new HttpRequestMessage(HttpMethod.Delete, bobRecord),
            new HttpRequestMessage(HttpMethod.Get, $"{storage}/files/?list-type=2&prefix=users%2F{Key(bob)}%2F"),
            new HttpRequestMessage(HttpMethod.Get, $"{storage}/files/?list-type=2&prefix=users%2F"),
            new HttpRequestMessage(HttpMethod.Get, $"{storage}/files/users/{Key(alice)}/..%2F{Key(bob)}/files/{Key("secret.txt")}"),
        })
        {
            using var refused = await http.SendAsync(request);
            var body = await refused.Content.ReadAsStringAsync();
            output.WriteLine($"{request.Method} {request.RequestUri!.PathAndQuery[(request.RequestUri.PathAndQuery.IndexOf("/files", StringComparison.Ordinal))..]} → {(int)refused.StatusCode} {body}");
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Contains("<Code>AccessDenied</Code>", body);
        }

        // Alice's route key does not open bob's Durable Object's route.
        var bobObject = bobEnvironment["Storage__S3__ServiceUrl"].Split('/')[4];
        var aliceObject = storage.Split('/')[4];
        using (var other = await http.GetAsync(bobRecord.Replace(aliceObject, bobObject)))
            Assert.Equal(HttpStatusCode.Forbidden, other.StatusCode);

        Assert.Equal("bob's", await bobClient.GetStringAsync("/files/secret.txt"));
    }

    /// <summary>The user and name part of a key, as the service lays out the bucket (FileStore.FileKey).</summary>
    private static string Key(string value) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)));
}
