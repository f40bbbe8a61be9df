using System.Net;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;

namespace Integration.Tests;

/// <summary>
/// The AppHost with <c>--storage=s3</c>: files and unfinished tus uploads live in the local S3-compatible
/// server's bucket, so an upload service restarted with a wiped data folder (what a Cloudflare container gets
/// after sleeping) still serves and resumes everything; and memory stays bounded with this backend too.
/// </summary>
[Collection(S3AppCollection.Name)]
public sealed class DurableStorageTests(S3AppFixture app)
{
    private static readonly TimeSpan RestartTimeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task Files_and_unfinished_uploads_survive_a_fresh_container()
    {
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("durable"));
        var file = TestContent.RandomBytes(3_000_000);
        using (var put = await client.PutAsync("/files/kept/photo.jpg", new ByteArrayContent(file)))
        {
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        }

        var upload = TestContent.RandomBytes(20 * 1024 * 1024); // more than one 16 MiB part
        var location = await Tus.CreateAsync(client, upload.Length, "kept/video.mp4", "video/mp4");
        using (var first = await Tus.PatchAsync(client, location, 0, new ByteArrayContent(upload[..7_000_000])))
        {
            Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        }

        await RestartUploadServiceWithAnEmptyDiskAsync();

        var listed = await TestContent.ListAsync(client, "kept/");
        Assert.Equal(["kept/photo.jpg"], listed.Files.Select(f => f.Name));
        Assert.Equal(file, await client.GetByteArrayAsync("/files/kept/photo.jpg"));
        Assert.Equal(7_000_000, await Tus.OffsetAsync(client, location));
        using (var rest = await Tus.PatchAsync(client, location, 7_000_000, new ByteArrayContent(upload[7_000_000..])))
        {
            Assert.Equal(HttpStatusCode.NoContent, rest.StatusCode);
        }

        var video = (await TestContent.ListAsync(client, "kept/video.mp4")).Files.Single();
        Assert.Equal(TestContent.Sha256Hex(upload), video.Sha256);
        Assert.Equal(upload, await client.GetByteArrayAsync("/files/kept/video.mp4"));
    }

    [Fact]
    public async Task One_GiB_upload_to_the_bucket_succeeds_under_a_128_MiB_heap_limit()
    {
        await app.AssertHeapLimitInEffectAsync();
        using var client = app.CreateWorkerClient(TestContent.UniqueUser("big-s3"));
        await TestContent.RoundTripOneGiBAsync(client, seed: 7);
    }

    private async Task RestartUploadServiceWithAnEmptyDiskAsync()
    {
        using var cts = new CancellationTokenSource(RestartTimeout);
        var commands = app.App.Services.GetRequiredService<ResourceCommandService>();
        var stopped = await commands.ExecuteCommandAsync("upload-service", KnownResourceCommands.StopCommand, cts.Token);
        Assert.True(stopped.Success, stopped.Message);
        await app.App.ResourceNotifications.WaitForResourceAsync(
            "upload-service", [KnownResourceStates.Exited, KnownResourceStates.Finished], cts.Token);

        Directory.Delete(app.UploadsRoot, recursive: true);
        Directory.CreateDirectory(app.UploadsRoot);

        var started = await commands.ExecuteCommandAsync("upload-service", KnownResourceCommands.StartCommand, cts.Token);
        Assert.True(started.Success, started.Message);
        await app.App.ResourceNotifications.WaitForResourceHealthyAsync("upload-service", cts.Token);
    }
}
