namespace Integration.Tests;

[Collection(AppCollection.Name)]
public sealed class LargeUploadTests(AppFixture app)
{
    [Fact]
    public async Task One_GiB_upload_through_the_worker_succeeds_under_a_128_MiB_heap_limit()
    {
        // The fixture runs the upload service with DOTNET_GCHeapHardLimit = 128 MiB: buffering the body
        // anywhere in the service would run out of memory long before a gigabyte.
        await app.AssertHeapLimitInEffectAsync();
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("big"));
        await TestContent.RoundTripOneGiBAsync(client, seed: 42);
    }
}
