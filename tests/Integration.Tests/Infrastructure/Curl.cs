using System.Diagnostics;
using System.Globalization;

namespace Integration.Tests;

/// <summary>
/// Uploads with curl, the client the README documents. Unlike HttpClient, which reports a broken pipe when a
/// server answers before the body is sent and closes the connection (dotnet/runtime#57186), curl stops sending
/// and reports that answer: what a test of an early error response (full disk, over a limit) needs.
/// </summary>
public static class Curl
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(3);

    /// <summary>curl's exit code too: 56 when the connection broke after (part of) the answer arrived.</summary>
    public sealed record Response(int ExitCode, int Status, string? ContentType, string Body, string Stderr)
    {
        /// <summary>The same answer as an HttpResponseMessage, for the checks written for those.</summary>
        public HttpResponseMessage AsHttpResponse() => new((System.Net.HttpStatusCode)Status)
        {
            Content = new StringContent(Body, ContentType is null ? null : new System.Net.Http.Headers.MediaTypeHeaderValue(ContentType)),
        };
    }

    /// <summary>Sends <paramref name="file"/> as the body, with Content-Length or, when <paramref name="chunked"/>, without.</summary>
    public static async Task<Response> UploadAsync(
        HttpMethod method, Uri url, string token, string file, bool chunked = false, IReadOnlyDictionary<string, string>? headers = null)
    {
        var bodyPath = Path.GetTempFileName();
        try
        {
            var start = new ProcessStartInfo("curl")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
            };
            foreach (var arg in (string[])["-sS", "-X", method.Method, "--upload-file", file, "-o", bodyPath,
                "-w", "%{http_code} %{content_type}", "--max-time", ((int)RunTimeout.TotalSeconds).ToString(CultureInfo.InvariantCulture),
                "-H", "Authorization: Bearer " + token])
            {
                start.ArgumentList.Add(arg);
            }

            if (chunked)
            {
                start.ArgumentList.Add("-H");
                start.ArgumentList.Add("Transfer-Encoding: chunked");
            }

            foreach (var (name, value) in headers ?? new Dictionary<string, string>())
            {
                start.ArgumentList.Add("-H");
                start.ArgumentList.Add($"{name}: {value}");
            }

            start.ArgumentList.Add(url.ToString());
            using var process = Process.Start(start) ?? throw new InvalidOperationException("curl did not start");
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using (var cancel = new CancellationTokenSource(RunTimeout + TimeSpan.FromSeconds(30)))
            {
                try
                {
                    await process.WaitForExitAsync(cancel.Token);
                }
                catch (OperationCanceledException)
                {
                    process.Kill(entireProcessTree: true);
                    throw new TimeoutException($"curl did not finish within {RunTimeout}");
                }
            }

            var written = (await stdout).Split(' ', 2);
            return new Response(
                process.ExitCode,
                int.Parse(written[0], CultureInfo.InvariantCulture),
                written.Length > 1 && written[1].Length > 0 ? written[1].Split(';')[0].Trim() : null,
                await File.ReadAllTextAsync(bodyPath),
                await stderr);
        }
        finally
        {
            File.Delete(bodyPath);
        }
    }
}
