using System.Diagnostics;
using System.Net;

namespace Integration.Tests;

/// <summary>
/// A full disk through the real stack: the upload service's storage root is a 64 MiB tmpfs that this test
/// mounts (it needs root, as in CI; elsewhere the tests are skipped, saying why). Uploads that do not fit get
/// 507 problem+json, whether the length is declared or the disk fills mid-write, plain or tus; nothing
/// partial becomes visible; the files stored before keep reading back intact; once space is freed, uploads
/// work again.
/// </summary>
[Collection(FullDiskCollection.Name)]
public sealed class FullDiskTests
{
    private const int MiB = 1 << 20;
    private const int CurlReceiveFailure = 56;

    [TmpfsFact]
    public async Task Uploads_that_do_not_fit_get_507_nothing_partial_and_reads_keep_working()
    {
        // Its own AppHost, started here rather than by a collection fixture, so a skipped test starts nothing.
        var app = new FullDiskApp();
        try
        {
            await app.InitializeAsync();
            await UploadsThatDoNotFitAsync(app);
        }
        finally
        {
            await app.DisposeAsync();
        }
    }

    private static async Task UploadsThatDoNotFitAsync(FullDiskApp app)
    {
        var user = TestContent.UniqueUser("full-disk");
        var token = UserTokens.Create(app.AuthSecret, user, TimeSpan.FromHours(1));
        using var client = app.CreateWorkerClient(user);
        var stored = await SurvivingFiles.StoreAsync(client);

        // Each upload is 1 MiB more than the free space: the disk fills mid-write, when the client has sent
        // (nearly) everything, so it reads the answer rather than a reset.
        await AssertInsufficientStorageAsync(await UploadOverFreeSpaceAsync(app, HttpMethod.Put, "/files/big/declared.bin", token));
        await AssertInsufficientStorageAsync(await UploadOverFreeSpaceAsync(app, HttpMethod.Put, "/files/big/chunked.bin", token, chunked: true));
        await TestContent.WaitUntilAsync(() => app.InFlightUploadFiles().Length == 0, "the failed PUTs' temp files are gone");
        await SurvivingFiles.AssertNotStoredAsync(client, "big/declared.bin");
        await SurvivingFiles.AssertNotStoredAsync(client, "big/chunked.bin");

        // tus keeps what arrived of a broken PATCH: after this one the disk stays full.
        var size = app.FreeBytes() + MiB;
        var location = await Tus.CreateAsync(client, size, "big/tus.bin");
        await AssertInsufficientStorageAsync(await UploadAsync(app, new HttpMethod("PATCH"), location.PathAndQuery, token, size, headers: new Dictionary<string, string>
        {
            ["Tus-Resumable"] = "1.0.0",
            ["Upload-Offset"] = "0",
            ["Content-Type"] = Tus.OffsetContentType,
        }));
        Assert.InRange(await Tus.OffsetAsync(client, location), 0, size - 1);
        await SurvivingFiles.AssertNotStoredAsync(client, "big/tus.bin");
        await SurvivingFiles.AssertExactlyTheseIntactAsync(client, stored); // reads work on the full disk

        // Freeing the space (terminating the upload) makes room again.
        using (var terminate = await client.SendAsync(Tus.Request(HttpMethod.Delete, location.PathAndQuery)))
            Assert.Equal(HttpStatusCode.NoContent, terminate.StatusCode);
        var after = TestContent.RandomBytes(8 * MiB);
        using (var put = await client.PutAsync("/files/after.bin", new ByteArrayContent(after)))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        Assert.Equal(after, await client.GetByteArrayAsync("/files/after.bin"));
    }

    private static Task<Curl.Response> UploadOverFreeSpaceAsync(FullDiskApp app, HttpMethod method, string path, string token, bool chunked = false) =>
        UploadAsync(app, method, path, token, app.FreeBytes() + MiB, chunked);

    private static async Task<Curl.Response> UploadAsync(
        FullDiskApp app, HttpMethod method, string path, string token, long size, bool chunked = false, IReadOnlyDictionary<string, string>? headers = null)
    {
        var source = Path.GetTempFileName();
        try
        {
            await using (var file = File.Create(source))
                await new SeededBytes(size, seed: 41).Range(0, size).CopyToAsync(file);
            return await Curl.UploadAsync(method, new Uri(app.WorkerUrl, path), token, source, chunked, headers);
        }
        finally
        {
            File.Delete(source);
        }
    }

    private static async Task AssertInsufficientStorageAsync(Curl.Response response)
    {
        Assert.True(response.Status == (int)HttpStatusCode.InsufficientStorage,
            $"expected 507, got {response.Status} {response.ContentType}: {response.Body} {response.Stderr}");
        if (response.ExitCode == CurlReceiveFailure && response.Body.Length == 0)
        {
            // A server that answers before reading the body may close the connection on the rest of it, and the
            // reset can overtake the answer's body: the head, with its status and type, is what surely arrives.
            Assert.Equal("application/problem+json", response.ContentType);
            return;
        }

        using var message = response.AsHttpResponse();
        await TestContent.AssertProblemAsync(message, HttpStatusCode.InsufficientStorage);
    }
}

/// <summary>The AppHost with the upload service's storage root on a 64 MiB tmpfs, unmounted afterwards.</summary>
public sealed class FullDiskApp : AppFixture
{
    public const long DiskBytes = 64L << 20;

    private bool _mounted;

    public override async Task InitializeAsync()
    {
        Directory.CreateDirectory(UploadsRoot);
        Tmpfs.Mount(UploadsRoot, DiskBytes);
        _mounted = true;
        await base.InitializeAsync();
    }

    public long FreeBytes() => new DriveInfo(UploadsRoot).AvailableFreeSpace;

    public override async Task DisposeAsync()
    {
        await StopAsync();
        if (_mounted)
        {
            Tmpfs.Unmount(UploadsRoot);
        }

        DeleteDataRoot();
    }
}

// Alone: its AppHost beside the others' would only slow this 2-core machine down.
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FullDiskCollection
{
    public const string Name = "app-full-disk";
}

/// <summary>A test that needs to mount a tmpfs (root on Linux): skipped, with the reason, where that fails.</summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    public TmpfsFactAttribute()
    {
        if (Tmpfs.CannotMount is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <summary>mount(8) and umount(8) for a size-limited tmpfs.</summary>
public static class Tmpfs
{
    private static readonly Lazy<string?> Probe = new(() =>
    {
        if (!OperatingSystem.IsLinux())
        {
            return "a tmpfs can only be mounted on Linux";
        }

        var directory = Directory.CreateTempSubdirectory("tmpfs-probe-").FullName;
        try
        {
            var (exitCode, error) = Run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", directory);
            if (exitCode != 0)
            {
                return $"cannot mount a tmpfs here (mount exited with {exitCode}: {error.Trim()}); a full disk needs one";
            }

            Run("umount", directory);
            return null;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return $"cannot run mount: {ex.Message}";
        }
        finally
        {
            try { Directory.Delete(directory); } catch (IOException) { }
        }
    });

    /// <summary>Why a tmpfs cannot be mounted here, or null when it can.</summary>
    public static string? CannotMount => Probe.Value;

    public static void Mount(string directory, long bytes)
    {
        var (exitCode, error) = Run("mount", "-t", "tmpfs", "-o", $"size={bytes}", "tmpfs", directory);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"mount of a tmpfs on {directory} failed ({exitCode}): {error}");
        }
    }

    public static void Unmount(string directory)
    {
        // Lazily if something still holds it open: it is detached now and freed when released.
        if (Run("umount", directory).ExitCode != 0)
        {
            Run("umount", "-l", directory);
        }
    }

    private static (int ExitCode, string Error) Run(string command, params string[] args)
    {
        var start = new ProcessStartInfo(command) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, error.Result);
    }
}
