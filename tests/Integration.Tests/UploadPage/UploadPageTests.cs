using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Integration.Tests;

/// <summary>
/// The upload page the Worker serves at /, driven in Debian's Chromium (tus-client/browser.mjs, playwright-core)
/// against the real AppHost: what a person does in a browser, checked against the bytes on the server.
/// </summary>
[Collection(AppCollection.Name)]
public sealed class UploadPageTests(AppFixture app, ITestOutputHelper output)
{
    private const string ChromiumPath = "/usr/bin/chromium";
    private static readonly TimeSpan BrowserTimeout = TimeSpan.FromMinutes(4);
    private static readonly TimeSpan LogTimeout = TimeSpan.FromSeconds(30);
    private static readonly string ArtifactsRoot = Path.Combine(AppContext.BaseDirectory, "artifacts", "upload-page");

    [Fact]
    public async Task Page_is_served_at_root_with_strict_headers_while_api_paths_reach_the_worker()
    {
        using var client = app.CreateWorkerClient();
        using var page = await client.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var csp = string.Join(";", page.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("script-src 'self'", csp);
        Assert.Contains("default-src 'none'", csp);
        Assert.DoesNotContain("unsafe-inline", csp);
        Assert.Equal("nosniff", string.Join(",", page.Headers.GetValues("X-Content-Type-Options")));
        Assert.Contains("<script type=\"module\" src=\"/app.js\">", await page.Content.ReadAsStringAsync());

        using var health = await client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        using var files = await client.GetAsync("/files");
        await TestContent.AssertProblemAsync(files, HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Dashboard_links_the_page_signed_in_and_mints_dev_tokens_into_the_log()
    {
        Assert.True(app.App.ResourceNotifications.TryGetCurrentState("worker", out var worker));
        var urls = worker.Snapshot.Urls;
        var signedIn = Assert.Single(urls, url => url.Url.Contains("#token="));
        var link = new Uri(signedIn.Url);
        Assert.Equal("/", link.AbsolutePath);
        Assert.Equal(app.WorkerUrl.Port, link.Port);
        await AssertTokenWorksAsync(link.Fragment["#token=".Length..]);
        Assert.Contains(urls, url => url.DisplayProperties.DisplayName == "Upload page" && !url.Url.Contains('#'));

        var result = await app.App.Services.GetRequiredService<ResourceCommandService>()
            .ExecuteCommandAsync("worker", "mint-dev-token");
        Assert.True(result.Success, result.Message);
        await AssertTokenWorksAsync(await MintedTokenFromLogAsync());
    }

    [Fact]
    public async Task Signed_in_page_uploads_two_files_lists_downloads_and_deletes()
    {
        var user = TestContent.UniqueUser("page");
        using var work = new WorkFolder();
        var large = work.RandomFile("holiday-video.bin", 32 << 20);
        var small = work.RandomFile("notes.txt", 1_500_000);

        var result = await RunBrowserAsync("upload", UserTokens.Create(app.AuthSecret, user, TimeSpan.FromHours(1)), work.Path, large.Path, small.Path);

        Assert.Equal(new Uri(app.WorkerUrl, "/").ToString(), result.GetProperty("urlAfterSignIn").GetString()); // fragment removed
        Assert.Equal([100, 100], result.GetProperty("progress").EnumerateArray().Select(p => p.GetInt32()));
        Assert.Equal(["holiday-video.bin", "notes.txt"], Strings(result.GetProperty("listed")));
        Assert.Equal(large.Sha256, Sha256OfFile(result.GetProperty("downloaded").GetString()!));
        Assert.Equal(["holiday-video.bin"], Strings(result.GetProperty("listedAfterDelete")));
        Assert.True(result.GetProperty("scrollWidth375").GetInt32() <= 375, "the page scrolls sideways at 375 px");
        Assert.Empty(Strings(result.GetProperty("consoleErrors"))); // CSP violations and failed requests show up here

        using var client = app.CreateWorkerClient(user);
        var stored = Assert.Single((await TestContent.ListAsync(client)).Files);
        Assert.Equal(large.Sha256, stored.Sha256);
        SaveArtifact(result.GetProperty("screenshot").GetString()!);
        SaveArtifact(result.GetProperty("screenshotNarrow").GetString()!);
    }

    [Fact]
    public async Task Pause_mid_upload_sends_nothing_and_resume_continues_from_the_server_offset()
    {
        var user = TestContent.UniqueUser("page-pause");
        using var work = new WorkFolder();
        var file = work.RandomFile("paused.bin", 40 << 20);

        var result = await RunBrowserAsync("pause", UserTokens.Create(app.AuthSecret, user, TimeSpan.FromHours(1)), work.Path, file.Path);

        Assert.StartsWith("Paused at", result.GetProperty("pausedStatus").GetString());
        Assert.Equal(0, result.GetProperty("requestsWhilePaused").GetInt32());
        var requests = TusRequests(result.GetProperty("tusRequests"));
        Assert.Single(requests, r => r.Method == "POST"); // one upload, continued rather than started again
        var resumedAt = requests.SkipWhile(r => r.Method != "HEAD").First(r => r.Method == "PATCH").Offset;
        Assert.True(resumedAt > 0, $"the resumed PATCH started at offset {resumedAt}");
        await AssertStoredAsync(user, "paused.bin", file.Sha256);
        SaveArtifact(result.GetProperty("screenshot").GetString()!);
    }

    [Fact]
    public async Task Reload_mid_upload_then_choosing_the_file_again_resumes_instead_of_restarting()
    {
        var user = TestContent.UniqueUser("page-reload");
        using var work = new WorkFolder();
        var file = work.RandomFile("reloaded.bin", 80 << 20);

        var result = await RunBrowserAsync("reload", UserTokens.Create(app.AuthSecret, user, TimeSpan.FromHours(1)), work.Path, file.Path);

        var before = TusRequests(result.GetProperty("beforeReload"));
        var after = TusRequests(result.GetProperty("afterReload"));
        Assert.Contains("reloaded.bin", result.GetProperty("unfinishedAfterReload").GetString());
        Assert.DoesNotContain(after, r => r.Method == "POST"); // no new upload after the reload
        Assert.Single(before, r => r.Method == "POST");
        var uploadPath = before.First(r => r.Method == "PATCH").Path;
        Assert.All(after, r => Assert.Equal(uploadPath, r.Path));
        var resumedAt = after.First(r => r.Method == "PATCH").Offset;
        // Reloaded at 60 %: what the server had kept is well above zero (a restart would send offset 0 after a new POST).
        Assert.True(resumedAt > file.Length / 4, $"after the reload the upload went on from offset {resumedAt} of {file.Length}");
        await AssertStoredAsync(user, "reloaded.bin", file.Sha256);
        SaveArtifact(result.GetProperty("screenshot").GetString()!);
    }

    [Fact]
    public async Task Expired_token_shows_a_readable_error()
    {
        var expired = UserTokens.Create(app.AuthSecret, TestContent.UniqueUser("page-expired"), DateTime.UtcNow.AddMinutes(-5));
        using var work = new WorkFolder();

        var result = await RunBrowserAsync("expired", expired, work.Path);

        var error = result.GetProperty("error").GetString();
        Assert.Contains("expired", error);
        Assert.Contains("sign in", error, StringComparison.OrdinalIgnoreCase);
    }

    private async Task<JsonElement> RunBrowserAsync(string scenario, string token, string outDir, params string[] files)
    {
        Assert.True(File.Exists(ChromiumPath), $"{ChromiumPath} is missing: install Debian's chromium package (.ci/run does).");
        var run = await NodeClients.RunAsync("browser.mjs",
            new Dictionary<string, string> { ["PAGE_TOKEN"] = token, ["CHROMIUM_PATH"] = ChromiumPath },
            BrowserTimeout, [scenario, app.WorkerUrl.ToString(), outDir, .. files]);
        Assert.True(run.ExitCode == 0, $"browser.mjs {scenario} exited {run.ExitCode}\n{run.Stderr}\n{run.Stdout}");
        return JsonDocument.Parse(run.Stdout.Trim().Split('\n')[^1]).RootElement;
    }

    /// <summary>The token the "Mint dev token" command wrote to the worker's console log.</summary>
    private async Task<string> MintedTokenFromLogAsync()
    {
        var line = await app.LogLineAsync("worker", "Token for user 'dev'", LogTimeout);
        return line[(line.LastIndexOf(' ') + 1)..];
    }

    private async Task AssertTokenWorksAsync(string token)
    {
        using var client = app.CreateWorkerClient();
        client.DefaultRequestHeaders.Authorization = new("Bearer", token);
        using var response = await client.GetAsync("/files");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private async Task AssertStoredAsync(string user, string name, string sha256)
    {
        using var client = app.CreateWorkerClient(user);
        var stored = Assert.Single((await TestContent.ListAsync(client)).Files);
        Assert.Equal(name, stored.Name);
        Assert.Equal(sha256, stored.Sha256);
    }

    /// <summary>Keeps a screenshot beside the test binaries (artifacts/upload-page/) and names it in the output.</summary>
    private void SaveArtifact(string path)
    {
        Directory.CreateDirectory(ArtifactsRoot);
        var target = Path.Combine(ArtifactsRoot, Path.GetFileName(path));
        File.Copy(path, target, overwrite: true);
        output.WriteLine($"screenshot: {target}");
    }

    private static IEnumerable<string?> Strings(JsonElement array) => array.EnumerateArray().Select(e => e.GetString());

    private sealed record TusRequest(string Method, string Path, long? Offset);

    private static List<TusRequest> TusRequests(JsonElement array) =>
        array.EnumerateArray().Select(e => new TusRequest(
            e.GetProperty("method").GetString()!,
            e.GetProperty("path").GetString()!,
            e.GetProperty("offset").GetString() is { } offset ? long.Parse(offset) : null)).ToList();

    private static string Sha256OfFile(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private sealed record SourceFile(string Path, long Length, string Sha256);

    /// <summary>A temporary folder for the files the browser uploads and what it saves.</summary>
    private sealed class WorkFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("upload-page-").FullName;

        public SourceFile RandomFile(string name, int length)
        {
            var bytes = TestContent.RandomBytes(length);
            var path = System.IO.Path.Combine(Path, name);
            File.WriteAllBytes(path, bytes);
            return new SourceFile(path, length, TestContent.Sha256Hex(bytes));
        }

        public void Dispose()
        {
            try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
        }
    }
}
