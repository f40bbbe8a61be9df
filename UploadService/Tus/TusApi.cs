using Microsoft.Extensions.DependencyInjection.Extensions;
using UploadService.Telemetry;
using static UploadService.Tus.TusProtocol;

namespace UploadService.Tus;

/// <summary>
/// /uploads: a tus 1.0.0 server (core, creation, creation-with-upload, creation-defer-length, termination,
/// checksum, expiration, concatenation). A complete upload is committed as a file in the user's /files
/// namespace. URLs it returns use the public origin the Worker forwards (X-Forwarded-Host/-Proto). One class
/// per intent: <see cref="TusCreation"/>, <see cref="TusAppend"/>, <see cref="TusQueries"/> (HEAD, OPTIONS),
/// <see cref="TusTermination"/>, <see cref="TusConcatenation"/>.
/// </summary>
public static class TusApi
{
    public const string RoutePrefix = "/uploads";

    public static TBuilder AddTus<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddOptions<TusOptions>()
            .Bind(builder.Configuration.GetSection(TusOptions.SectionName))
            .Validate(options => options.Expiration > TimeSpan.Zero && options.SweepInterval > TimeSpan.Zero,
                "Tus:Expiration and Tus:SweepInterval must be positive.")
            .ValidateOnStart();
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<TusLocks>();
        builder.Services.AddSingleton<TusRunningHashes>();
        builder.Services.AddHostedService<TusExpirySweeper>();
        return builder;
    }

    /// <summary>
    /// Before routing: honours X-HTTP-Method-Override on POST (how the Durable Object forwards PATCH, and
    /// what clients behind restrictive proxies send) and puts Tus-Resumable on every /uploads response.
    /// </summary>
    public static IApplicationBuilder UseTus(this IApplicationBuilder app) => app.Use((context, next) =>
    {
        if (!context.Request.Path.StartsWithSegments(RoutePrefix))
        {
            return next(context);
        }

        var request = context.Request;
        if (HttpMethods.IsPost(request.Method)
            && request.Headers[Headers.MethodOverride].ToString() is { Length: > 0 } overridden)
        {
            request.Method = overridden.Trim().ToUpperInvariant();
        }

        context.Response.OnStarting(() =>
        {
            context.Response.Headers[Headers.TusResumable] = TusProtocol.Version;
            return Task.CompletedTask;
        });
        return next(context);
    });

    public static IEndpointRouteBuilder MapTusApi(this IEndpointRouteBuilder app)
    {
        var uploads = app.MapGroup(RoutePrefix).AddEndpointFilter(RequireTusVersion);

        uploads.MapMethods("", [HttpMethods.Options], TusQueries.Options);
        uploads.MapMethods("/{id}", [HttpMethods.Options], TusQueries.Options);
        uploads.MapPost("", TusCreation.Create).MeasuredAsUpload("tus");
        uploads.MapMethods("/{id}", [HttpMethods.Head], TusQueries.Head);
        uploads.MapMethods("/{id}", [HttpMethods.Patch], TusAppend.Patch).MeasuredAsUpload("tus");
        uploads.MapDelete("/{id}", TusTermination.Terminate);

        return app;
    }

    /// <summary>Every request but OPTIONS names the protocol version; another version → 412 with Tus-Version.</summary>
    private static async ValueTask<object?> RequireTusVersion(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        if (!HttpMethods.IsOptions(http.Request.Method) && http.Request.Headers[Headers.TusResumable] != TusProtocol.Version)
        {
            http.Response.Headers[Headers.TusVersion] = TusProtocol.Version;
            return TusResults.Problem(StatusCodes.Status412PreconditionFailed,
                $"This server speaks tus {TusProtocol.Version}; send 'Tus-Resumable: {TusProtocol.Version}'.");
        }

        return await next(context);
    }
}
