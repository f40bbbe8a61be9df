using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Integration.Tests;

[Collection(AppCollection.Name)]
public sealed class TelemetryTests(AppFixture app)
{
    [Fact]
    public async Task An_upload_is_one_trace_spanning_worker_durable_object_and_upload_service()
    {
        // The client starts the trace, so the test knows its id before any span is exported.
        var traceId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var parentSpanId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

        using var client = app.CreateWorkerClient(TestContent.UniqueUser("traced"));
        using var request = new HttpRequestMessage(HttpMethod.Put, "/files/traced.bin")
        {
            Content = new ByteArrayContent(TestContent.RandomBytes(64 * 1024)),
        };
        request.Headers.Add("traceparent", $"00-{traceId}-{parentSpanId}-01");
        using (var put = await client.SendAsync(request))
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);

        var spans = await DashboardTraces.WaitForTraceAsync(app, traceId, spans =>
            spans.Any(s => s.Service == "worker" && !DashboardTraces.IsDurableObject(s))
            && spans.Any(s => s.Service == "worker" && DashboardTraces.IsDurableObject(s))
            && spans.Any(s => s.Service == "upload-service"));

        var summary = string.Join("; ", spans.Select(s => $"{s.Service}: {s.Name}"));
        Assert.True(spans.Any(s => s.Service == "worker" && !DashboardTraces.IsDurableObject(s)), $"no Worker span in {summary}");
        Assert.True(spans.Any(s => s.Service == "worker" && DashboardTraces.IsDurableObject(s)), $"no Durable Object span in {summary}");
        Assert.True(spans.Any(s => s.Service == "upload-service"), $"no upload-service span in {summary}");
        // The Worker's first span continues the client's span, so all of it hangs off one parent.
        Assert.Contains(spans, s => s.ParentSpanId == parentSpanId);
    }

    [Fact]
    public async Task Tokens_secrets_and_signatures_appear_in_no_span_and_no_log()
    {
        var traceId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var user = TestContent.UniqueUser("redacted");
        var token = UserTokens.Create(app.AuthSecret, user, TimeSpan.FromHours(1));
        using var client = app.CreateWorkerClient();
        client.DefaultRequestHeaders.Authorization = new("Bearer", token);
        using (var request = new HttpRequestMessage(HttpMethod.Put, "/files/redacted.bin") { Content = new ByteArrayContent([1, 2, 3]) })
        {
            request.Headers.Add("traceparent", $"00-{traceId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}-01");
            using var put = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        }
        // A rejected token is logged by nobody either.
        using (var bad = new HttpRequestMessage(HttpMethod.Get, "/files") { Headers = { { "Authorization", $"Bearer {token}x" } } })
        using (var rejected = await client.SendAsync(bad))
            Assert.Equal(HttpStatusCode.Unauthorized, rejected.StatusCode);
        await DashboardTraces.WaitForTraceAsync(app, traceId, spans => spans.Any(s => s.Service == "upload-service") && spans.Count >= 3);

        using var dashboard = new HttpClient { BaseAddress = app.DashboardUrl };
        dashboard.DefaultRequestHeaders.Add("X-API-Key", app.DashboardApiKey);
        var exported = new Dictionary<string, string>
        {
            ["spans"] = await dashboard.GetStringAsync("/api/telemetry/traces?limit=1000"),
            ["OTLP logs"] = await dashboard.GetStringAsync("/api/telemetry/logs?limit=10000"),
        };
        // (What the Worker prints to its console is checked in worker/test/redaction.test.ts; wrangler shows
        // env-file values as "(hidden)".)
        Assert.Contains(user, exported["spans"]); // what is checked below holds this request's traffic

        var secrets = new Dictionary<string, string>
        {
            ["the bearer token"] = token,
            ["the token's signature"] = token.Split('.')[2],
            ["AUTH_SECRET"] = app.AuthSecret,
            ["INTERNAL_SECRET"] = app.InternalSecret,
        };
        foreach (var (where, text) in exported)
        {
            foreach (var (what, secret) in secrets)
                Assert.False(text.Contains(secret, StringComparison.Ordinal), $"{what} appears in the {where}");
            Assert.False(Regex.IsMatch(text, "v1=[0-9a-f]{64}"), $"an internal signature appears in the {where}");
        }
    }
}
