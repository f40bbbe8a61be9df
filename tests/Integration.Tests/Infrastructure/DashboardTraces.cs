using System.Net;
using System.Text.Json;

namespace Integration.Tests;

/// <summary>Traces as the Aspire dashboard shows them, read through its telemetry API.</summary>
public static class DashboardTraces
{
    private static readonly TimeSpan TraceDeadline = TimeSpan.FromSeconds(60);

    public static bool IsDurableObject(Span span) =>
        span.Name.Contains("Durable Object", StringComparison.OrdinalIgnoreCase)
        || span.Name.Contains("UserAppContainer", StringComparison.Ordinal);

    /// <summary>Polls the dashboard's telemetry API until the trace is <paramref name="complete"/> (or the deadline passes).</summary>
    public static async Task<List<Span>> WaitForTraceAsync(AppFixture app, string traceId, Func<List<Span>, bool> complete)
    {
        using var dashboard = new HttpClient { BaseAddress = app.DashboardUrl };
        dashboard.DefaultRequestHeaders.Add("X-API-Key", app.DashboardApiKey);

        var spans = new List<Span>();
        var deadline = DateTime.UtcNow + TraceDeadline;
        while (DateTime.UtcNow < deadline)
        {
            using var response = await dashboard.GetAsync($"/api/telemetry/traces/{traceId}");
            if (response.StatusCode == HttpStatusCode.OK)
            {
                spans = ParseSpans(await response.Content.ReadAsStringAsync());
                if (complete(spans)) break;
            }
            else
            {
                Assert.True(response.StatusCode == HttpStatusCode.NotFound,
                    $"dashboard telemetry API answered {(int)response.StatusCode}");
            }
            await Task.Delay(500);
        }
        return spans;
    }

    public sealed record Span(string Service, string Name, string SpanId, string? ParentSpanId);

    private static List<Span> ParseSpans(string json)
    {
        var spans = new List<Span>();
        using var document = JsonDocument.Parse(json);
        foreach (var resourceSpans in document.RootElement.GetProperty("data").GetProperty("resourceSpans").EnumerateArray())
        {
            var service = resourceSpans.GetProperty("resource").GetProperty("attributes").EnumerateArray()
                .Where(a => a.GetProperty("key").GetString() == "service.name")
                .Select(a => a.GetProperty("value").GetProperty("stringValue").GetString())
                .FirstOrDefault() ?? "";
            foreach (var scopeSpans in resourceSpans.GetProperty("scopeSpans").EnumerateArray())
            {
                foreach (var span in scopeSpans.GetProperty("spans").EnumerateArray())
                {
                    var parent = span.TryGetProperty("parentSpanId", out var p) ? p.GetString() : null;
                    spans.Add(new Span(service, span.GetProperty("name").GetString() ?? "", span.GetProperty("spanId").GetString() ?? "", parent));
                }
            }
        }
        return spans;
    }
}
