using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

// The common Aspire services the upload service uses: health endpoints and OpenTelemetry. (The Aspire template's
// service discovery and HTTP resilience are left out: the service calls no other service by name, and its only
// outgoing client, the S3 one, has its own retries.)
public static class Extensions
{
    private const string HealthEndpointPath = "/health";
    private const string AlivenessEndpointPath = "/alive";

    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.ConfigureOpenTelemetry();

        return builder;
    }

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        // Telemetry goes only where an endpoint is configured (the AppHost sets it; the Durable Object passes it on
        // when the Worker has one). Without one, no pipeline is built: nothing would read its spans, and building
        // it is start-up time that every wake of a user's container pays.
        if (string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            return builder;
        }

        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics =>
            {
                metrics.AddAspNetCoreInstrumentation()
                    .AddHttpClientInstrumentation()
                    .AddRuntimeInstrumentation();
            })
            .WithTracing(tracing =>
            {
                tracing.AddSource(builder.Environment.ApplicationName)
                    .AddAspNetCoreInstrumentation(aspnet =>
                        // Health probes would otherwise fill the dashboard with one-span traces.
                        aspnet.Filter = context =>
                            !context.Request.Path.StartsWithSegments(HealthEndpointPath)
                            && !context.Request.Path.StartsWithSegments(AlivenessEndpointPath))
                    .AddHttpClientInstrumentation();
            });

        builder.Services.AddOpenTelemetry().UseOtlpExporter();

        return builder;
    }

    // The service has nothing to check but itself: it is healthy and alive when it answers. (Plain endpoints
    // rather than the health-checks framework, whose services and middleware every start would pay for.)
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        app.MapGet(HealthEndpointPath, Healthy);
        app.MapGet(AlivenessEndpointPath, Healthy);
        return app;
    }

    private static Task Healthy(HttpContext context)
    {
        context.Response.ContentType = "text/plain";
        return context.Response.WriteAsync("Healthy");
    }
}
