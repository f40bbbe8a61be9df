using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using UploadService.Storage;
using UploadService.Tus;
using static UploadService.Tests.Names;

namespace UploadService.Tests;

/// <summary>
/// A real full disk: the service's storage root on a 4 MiB tmpfs that the test mounts (it runs as root in
/// CI and the dev container; elsewhere the tests are skipped and say why). A write that runs out of space is
/// 507 problem+json and leaves no partial file or temp file; the files already stored keep being served;
/// space freed by the failed write is usable again.
/// </summary>
public sealed class DiskFullTests : IDisposable
{
    private const int DiskBytes = 4 * 1024 * 1024;

    private readonly SmallDisk _disk = SmallDisk.TryMount(DiskBytes);
    private UploadServiceFactory? _service;

    private UploadServiceFactory Service => _service ??= UploadServiceFactory.WithSettings(new Dictionary<string, string>
    {
        ["Storage:Root"] = _disk.Path!,
        ["Upload:MaxFileBytes"] = (16 * 1024 * 1024).ToString(),
    });

    private HttpRequestMessage Request(HttpMethod method, string url, string user, byte[]? body = null)
    {
        var request = new HttpRequestMessage(method, url);
        request.Headers.Add("X-User-Id", user);
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
        }

        return request;
    }

    private async Task<string[]> ListAsync(string user)
    {
        using var response = await Service.Client.SendAsync(Request(HttpMethod.Get, "/files", user));
        var list = await response.Content.ReadFromJsonAsync<JsonElement>();
        return list.GetProperty("files").EnumerateArray().Select(file => file.GetProperty("name").GetString()!).ToArray();
    }

    private static async Task AssertInsufficientStorageAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.InsufficientStorage, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("full", body);
    }

    private async Task AssertStillServesAsync(string user, string name, byte[] bytes)
    {
        using var get = await Service.Client.SendAsync(Request(HttpMethod.Get, "/files/" + name, user));
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(bytes, await get.Content.ReadAsByteArrayAsync());
        using var health = await Service.Client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [SkippableFact]
    public async Task A_put_that_fills_the_disk_is_507_leaves_nothing_and_reads_keep_working()
    {
        Skip.If(_disk.Path is null, _disk.Reason);
        var kept = Bytes(100_000);
        using (var put = await Service.Client.SendAsync(Request(HttpMethod.Put, "/files/kept.bin", "alice", kept)))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);

        using (var full = await Service.Client.SendAsync(Request(HttpMethod.Put, "/files/huge.bin", "alice", Bytes(DiskBytes + 1))))
            await AssertInsufficientStorageAsync(full);

        Assert.Equal(["kept.bin"], await ListAsync("alice"));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_disk.Path!, "tmp")));
        await AssertStillServesAsync("alice", "kept.bin", kept);

        // The failed write's space was given back: a file that fits is stored.
        var next = Bytes(DiskBytes / 2);
        using (var put = await Service.Client.SendAsync(Request(HttpMethod.Put, "/files/next.bin", "alice", next)))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        await AssertStillServesAsync("alice", "next.bin", next);
    }

    [SkippableFact]
    public async Task A_multipart_part_that_fills_the_disk_is_507_and_leaves_nothing()
    {
        Skip.If(_disk.Path is null, _disk.Reason);
        using var form = new MultipartFormDataContent { { new ByteArrayContent(Bytes(DiskBytes + 1)), "file", "huge.bin" } };
        using var request = Request(HttpMethod.Post, "/files", "bob");
        request.Content = form;

        using var response = await Service.Client.SendAsync(request);

        await AssertInsufficientStorageAsync(response);
        Assert.Empty(await ListAsync("bob"));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_disk.Path!, "tmp")));
    }

    [SkippableFact]
    public async Task A_tus_chunk_that_fills_the_disk_is_507_and_discarded_and_the_upload_resumes()
    {
        Skip.If(_disk.Path is null, _disk.Reason);
        using var create = Request(HttpMethod.Post, "/uploads", "carol");
        create.Headers.Add("Tus-Resumable", "1.0.0");
        create.Headers.Add("Upload-Defer-Length", "1");
        create.Headers.Add("Upload-Metadata", TusClientHeaders.Metadata([new("filename", "t.bin")]));
        using var created = await Service.Client.SendAsync(create);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var path = created.Headers.Location!.AbsolutePath;

        using (var full = await Service.Client.SendAsync(Patch(path, 0, Bytes(DiskBytes + 1))))
            await AssertInsufficientStorageAsync(full);

        using (var head = Request(HttpMethod.Head, path, "carol"))
        {
            head.Headers.Add("Tus-Resumable", "1.0.0");
            using var state = await Service.Client.SendAsync(head);
            Assert.Equal("0", state.Headers.GetValues("Upload-Offset").Single());
        }

        var bytes = Bytes(1000);
        using var patch = Patch(path, 0, bytes);
        patch.Headers.Add("Upload-Length", "1000");
        using (var done = await Service.Client.SendAsync(patch))
            Assert.Equal(HttpStatusCode.NoContent, done.StatusCode);
        await AssertStillServesAsync("carol", "t.bin", bytes);

        HttpRequestMessage Patch(string url, long offset, byte[] chunk)
        {
            var request = Request(HttpMethod.Patch, url, "carol", chunk);
            request.Headers.Add("Tus-Resumable", "1.0.0");
            request.Headers.Add("Upload-Offset", offset.ToString());
            request.Content!.Headers.ContentType = new MediaTypeHeaderValue(TusProtocol.OffsetContentType);
            return request;
        }
    }

    [SkippableFact]
    public async Task The_store_reports_a_full_disk_as_a_storage_full_io_error_and_keeps_no_temp_file()
    {
        Skip.If(_disk.Path is null, _disk.Reason);
        var store = new FileSystemFileStore(_disk.Path!).Opened();

        var error = await Assert.ThrowsAnyAsync<IOException>(() => store.SaveAsync(
            User("dave"), File("huge.bin"), new MemoryStream(Bytes(DiskBytes + 1)), "application/octet-stream", long.MaxValue, CancellationToken.None));

        Assert.True(StorageFull.Is(error), $"not recognised as a full disk: HResult {error.HResult}, {error.Message}");
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_disk.Path!, "tmp")));
        Assert.Equal(0, await store.GetUsageAsync(User("dave"), CancellationToken.None));
    }

    public void Dispose()
    {
        _service?.Dispose();
        _disk.Dispose();
    }

    /// <summary>A tmpfs of a given size mounted on a fresh folder, unmounted on dispose; Path is null (with a Reason) when mounting is not permitted.</summary>
    private sealed class SmallDisk : IDisposable
    {
        private readonly TempDirectory? _mountPoint;

        private SmallDisk(TempDirectory? mountPoint, string? reason)
        {
            _mountPoint = mountPoint;
            Reason = reason ?? "";
        }

        public string? Path => _mountPoint?.Path;

        public string Reason { get; }

        public static SmallDisk TryMount(int bytes)
        {
            if (!OperatingSystem.IsLinux())
            {
                return new SmallDisk(null, "a full disk is simulated with a tmpfs mount, which needs Linux");
            }

            var mountPoint = new TempDirectory();
            var (code, output) = Run("mount", "-t", "tmpfs", "-o", $"size={bytes}", "tmpfs", mountPoint.Path);
            if (code == 0)
            {
                return new SmallDisk(mountPoint, null);
            }

            mountPoint.Dispose();
            return new SmallDisk(null, $"cannot mount a tmpfs to fill (needs root or CAP_SYS_ADMIN): {output.Trim()}");
        }

        public void Dispose()
        {
            if (_mountPoint is not null)
            {
                Run("umount", _mountPoint.Path);
                _mountPoint.Dispose();
            }
        }

        private static (int Code, string Output) Run(string command, params string[] arguments)
        {
            try
            {
                var start = new ProcessStartInfo(command) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
                arguments.ToList().ForEach(start.ArgumentList.Add);
                using var process = Process.Start(start)!;
                var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
                process.WaitForExit();
                return (process.ExitCode, output);
            }
            catch (System.ComponentModel.Win32Exception ex)
            {
                return (-1, ex.Message);
            }
        }
    }
}
