using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;

namespace Integration.Tests;

[Collection(AppCollection.Name)]
public sealed class LargeUploadTests(AppFixture app)
{
    private const long OneGiB = 1L << 30;

    [Fact]
    public async Task One_GiB_upload_through_the_worker_succeeds_under_a_128_MiB_heap_limit()
    {
        // The fixture runs the upload service with DOTNET_GCHeapHardLimit = 128 MiB: buffering the body
        // anywhere in the service would run out of memory long before a gigabyte.
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("big"));
        using var content = new GeneratedContent(OneGiB, seed: 42);

        using var put = await client.PutAsync("/files/big/one-gib.bin", content);
        Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        var stored = (await put.Content.ReadFromJsonAsync<StoredFile>())!;
        Assert.Equal(OneGiB, stored.Size);
        Assert.Equal(content.Sha256Hex, stored.Sha256);

        // Read it back as a stream and hash it, so the bytes on disk are checked, not only the reported hash.
        using var get = await client.GetAsync("/files/big/one-gib.bin", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        await using var body = await get.Content.ReadAsStreamAsync();
        Assert.Equal(content.Sha256Hex, Convert.ToHexStringLower(await SHA256.HashDataAsync(body)));

        using var delete = await client.DeleteAsync("/files/big/one-gib.bin");
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
    }
}
