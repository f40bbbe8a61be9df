using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Integration.Tests;

/// <summary>
/// The upload page the Worker serves at /, Uppy's Dashboard, driven in Debian's Chromium (tus-client/browser.mjs,
/// playwright-core) against the real AppHost: what a person does in a browser, checked against the bytes on the
/// server, and an accessibility audit (axe-core).
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
    public async Task Three_files_dropped_at_once_upload_list_download_delete_and_pass_the_accessibility_audit()
    {
        var user = TestContent.UniqueUser("page");
        using var work = new WorkFolder();
        // A real image among them: the Dashboard makes its thumbnail (a blob: URL, which the page's CSP allows).
        var image = Path.Combine(Projects.AppHost.ProjectPath, "..", "docs", "dashboard-user-containers.png");
        var files = new[] { work.RandomFile("holiday-video.bin", 6 << 20), work.RandomFile("notes.txt", 1_500_000), work.CopyOf(image, "screenshot.png") };

        var result = await RunBrowserAsync("upload", UserTokens.Create(app.AuthSecret, user, TimeSpan.FromHours(1)), work.Path,
            files.Select(f => f.Path).ToArray());

        Assert.Equal(new Uri(app.WorkerUrl, "/").ToString(), result.GetProperty("urlAfterSignIn").GetString()); // fragment removed
        Assert.Equal(["holiday-video.bin", "notes.txt", "screenshot.png"], Strings(result.GetProperty("listed")));
        Assert.Equal(files.Select(f => PageSize(f.Length)), Strings(result.GetProperty("listedSizes")));
        Assert.Equal(files[0].Sha256, Sha256OfFile(result.GetProperty("downloaded").GetString()!));
        Assert.Equal(["holiday-video.bin", "notes.txt"], Strings(result.GetProperty("listedAfterDelete")));
        Assert.True(result.GetProperty("scrollWidth375").GetInt32() <= 375, "the page scrolls sideways at 375 px");
        Assert.Empty(Strings(result.GetProperty("consoleErrors"))); // CSP violations and failed requests show up here
        foreach (var audit in new[] { "accessibility", "accessibilityNarrow" })
        {
            var serious = result.GetProperty(audit).EnumerateArray()
                .Where(v => v.GetProperty("impact").GetString() is "serious" or "critical")
                .Select(v => v.GetRawText()).ToList();
            Assert.True(serious.Count == 0, $"{audit}: axe-core found serious or critical violations:\n{string.Join("\n", serious)}");
        }

        using var client = app.CreateWorkerClient(user);
        var stored = (await TestContent.ListAsync(client)).Files.OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
        Assert.Equal(files.Take(2).Select(f => (Path.GetFileName(f.Path), f.Length, f.Sha256)), stored.Select(f => (f.Name, f.Size, f.Sha256)));
        SaveArtifact(result.GetProperty("screenshot").GetString()!);
        SaveArtifact(result.GetProperty("screenshotNarrow").GetString()!);
    }

    [Fact]
    public async Task Pause_mid_upload_sends_nothing_and_resume_continues_from_the_server_offset()
    {
        var user = TestContent.UniqueUser("page-pause");
        using var work = new WorkFolder();
        var file = work.RandomFile("paused.bin", 40 << 20);

        var result = await RunBrowserAsync("pause", UserTokens.Create(app.AuthSecret, user, TimeSpan.FromHours(1)), work.Path, [file.Path]);

        Assert.InRange(result.GetProperty("pausedPercent").GetInt32(), 20, 99);
        Assert.Equal(0, result.GetProperty("requestsWhilePaused").GetInt32());
        // One 40 MiB PATCH was in flight: paused means it was aborted, so the progress stands still.
        Assert.Equal(result.GetProperty("pausedPercent").GetInt32(), result.GetProperty("percentAfterWaiting").GetInt32());
        var requests = TusRequests(result.GetProperty("tusRequests"));
        Assert.Single(requests, r => r.Method == "POST"); // one upload, continued rather than started again
        var resumedAt = requests.SkipWhile(r => r.Method != "HEAD").First(r => r.Method == "PATCH").Offset;
        Assert.True(resumedAt > 0, $"the resumed PATCH started at offset {resumedAt}");
        await AssertStoredAsync(user, "paused.bin", file.Sha256);
        SaveArtifact(result.GetProperty("screenshot").GetString()!);
    }

    [Theory]
    // Up to Golden Retriever's IndexedDB limit (10 MiB) the file comes back by itself; above it the page asks for it.
    [InlineData(8 << 20, 1 << 20, false)]
    [InlineData(24 << 20, 4 << 20, true)]
    public async Task Reload_mid_upload_continues_from_the_server_offset(int length, int throttle, bool asksForTheFile)
    {
        var user = TestContent.UniqueUser("page-reload");
        using var work = new WorkFolder();
        var file = work.RandomFile("reloaded.bin", length);

        var result = await RunBrowserAsync("reload", UserTokens.Create(app.AuthSecret, user, TimeSpan.FromHours(1)), work.Path,
            [file.Path], new() { ["THROTTLE"] = throttle.ToString(System.Globalization.CultureInfo.InvariantCulture) });

        Assert.Equal(asksForTheFile, result.GetProperty("askedForTheFile").GetBoolean());
        if (asksForTheFile) Assert.Contains("re-select", result.GetProperty("statusAfterReload").GetString(), StringComparison.OrdinalIgnoreCase);
        var before = TusRequests(result.GetProperty("beforeReload"));
        var after = TusRequests(result.GetProperty("afterReload"));
        Assert.Single(before, r => r.Method == "POST");
        Assert.DoesNotContain(after, r => r.Method == "POST"); // the same upload after the reload, not a new one
        var uploadPath = before.First(r => r.Method == "PATCH").Path;
        Assert.All(after, r => Assert.Equal(uploadPath, r.Path));
        // Reloaded at 50 %: the server kept what it had received, so fewer bytes than the whole file went again.
        var resumedAt = after.First(r => r.Method == "PATCH").Offset;
        Assert.True(resumedAt > length / 4, $"after the reload the upload went on from offset {resumedAt} of {length}");
        await AssertStoredAsync(user, "reloaded.bin", file.Sha256);
        SaveArtifact(result.GetProperty("screenshot").GetString()!);
    }

    [Fact]
    public async Task A_selection_kept_across_a_reload_is_offered_only_to_its_own_user()
    {
        var alice = TestContent.UniqueUser("page-alice");
        var bob = TestContent.UniqueUser("page-bob");
        using var work = new WorkFolder();
        var file = work.RandomFile("alices.bin", 8 << 20);

        var result = await RunBrowserAsync("two-users", UserTokens.Create(app.AuthSecret, alice, TimeSpan.FromHours(1)), work.Path, [file.Path],
            new() { ["PAGE_TOKEN_2"] = UserTokens.Create(app.AuthSecret, bob, TimeSpan.FromHours(1)), ["THROTTLE"] = (1 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture) });

        Assert.Equal(0, result.GetProperty("itemsShownToB").GetInt32());
        var before = TusRequests(result.GetProperty("beforeReload"));
        var after = TusRequests(result.GetProperty("afterReload"));
        Assert.DoesNotContain(after, r => r.Method == "POST"); // alice's upload went on, it did not start again
        Assert.All(after, r => Assert.Equal(before.First(b => b.Method == "PATCH").Path, r.Path));
        await AssertStoredAsync(alice, "alices.bin", file.Sha256);
        await AssertNothingStoredAsync(bob);
        SaveArtifact(result.GetProperty("screenshot").GetString()!);
    }

    [Fact]
    public async Task A_refused_upload_shows_the_problems_detail()
    {
        var user = TestContent.UniqueUser("page-refused");
        using var work = new WorkFolder();
        var file = work.RandomFile("nul.txt", 1000); // a Windows device name: the service refuses it

        var result = await RunBrowserAsync("refused", UserTokens.Create(app.AuthSecret, user, TimeSpan.FromHours(1)), work.Path, [file.Path]);

        var error = result.GetProperty("error").GetString();
        Assert.Contains("(400", error);
        Assert.Contains("Invalid filename", error); // the problem's detail, not tus-js-client's message
        Assert.DoesNotContain("response text", error);
        Assert.Equal(JsonValueKind.Null, result.GetProperty("itemFailed").ValueKind); // refused for its name: retrying cannot help, it leaves the list
        await AssertNothingStoredAsync(user);
        SaveArtifact(result.GetProperty("screenshot").GetString()!);
    }

    [Fact]
    public async Task A_name_that_could_read_as_another_is_refused_by_the_page_and_shown_escaped()
    {
        var user = TestContent.UniqueUser("page-bidi");
        using var work = new WorkFolder();
        var file = work.RandomFile("invoice\u202Efdp.exe", 1000); // a right-to-left override: reads as invoiceexe.pdf

        var result = await RunBrowserAsync("refused", UserTokens.Create(app.AuthSecret, user, TimeSpan.FromHours(1)), work.Path, [file.Path]);

        var error = result.GetProperty("error").GetString()!;
        Assert.Contains("invoice<U+202E>fdp.exe was not added", error);
        Assert.DoesNotContain('\u202E', error);
        Assert.Equal(JsonValueKind.Null, result.GetProperty("itemFailed").ValueKind); // never in the Dashboard
        Assert.Empty(TusRequests(result.GetProperty("tusRequests")));
        await AssertNothingStoredAsync(user);
    }

    [Fact]
    public async Task Expired_token_shows_a_readable_error()
    {
        var expired = UserTokens.Create(app.AuthSecret, TestContent.UniqueUser("page-expired"), DateTime.UtcNow.AddMinutes(-5));
        using var work = new WorkFolder();

        var result = await RunBrowserAsync("expired", expired, work.Path, []);

        var error = result.GetProperty("error").GetString();
        Assert.Contains("expired", error);
        Assert.Contains("sign in", error, StringComparison.OrdinalIgnoreCase);
    }

    private async Task<JsonElement> RunBrowserAsync(string scenario, string token, string outDir, string[] files,
        Dictionary<string, string>? env = null)
    {
        Assert.True(File.Exists(ChromiumPath), $"{ChromiumPath} is missing: install Debian's chromium package (.ci/run does).");
        var run = await NodeClients.RunAsync("browser.mjs",
            new Dictionary<string, string>(env ?? []) { ["PAGE_TOKEN"] = token, ["CHROMIUM_PATH"] = ChromiumPath },
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

    private async Task AssertNothingStoredAsync(string user)
    {
        using var client = app.CreateWorkerClient(user);
        Assert.Empty((await TestContent.ListAsync(client)).Files);
    }

    /// <summary>Keeps a screenshot beside the test binaries (artifacts/upload-page/) and names it in the output.</summary>
    private void SaveArtifact(string path)
    {
        Directory.CreateDirectory(ArtifactsRoot);
        var target = Path.Combine(ArtifactsRoot, Path.GetFileName(path));
        File.Copy(path, target, overwrite: true);
        output.WriteLine($"screenshot: {target}");
    }

    /// <summary>A size as the page writes it, the Dashboard's way (@transloadit/prettier-bytes: powers of 1024, "KB", "MB").</summary>
    private static string PageSize(long bytes)
    {
        string[] units = ["B", "KB", "MB", "GB", "TB"];
        var exponent = bytes == 0 ? 0 : Math.Min((int)Math.Floor(Math.Log(bytes) / Math.Log(1024)), units.Length - 1);
        var value = bytes / Math.Pow(1024, exponent);
        var text = value >= 10 || value % 1 == 0
            ? Math.Round(value, MidpointRounding.AwayFromZero).ToString(System.Globalization.CultureInfo.InvariantCulture)
            : value.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture);
        return $"{text} {units[exponent]}";
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

        public SourceFile CopyOf(string source, string name)
        {
            var path = System.IO.Path.Combine(Path, name);
            File.Copy(source, path);
            var bytes = File.ReadAllBytes(path);
            return new SourceFile(path, bytes.Length, TestContent.Sha256Hex(bytes));
        }

        public void Dispose()
        {
            try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
        }
    }
}
