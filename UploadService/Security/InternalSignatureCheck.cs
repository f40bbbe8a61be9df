using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using UploadService.Domain;

namespace UploadService.Security;

/// <summary><c>INTERNAL_SECRET</c> and <c>Internal:*</c>: the key the Durable Object signs with, and the clock skew allowed.</summary>
public sealed class InternalSignatureOptions
{
    public const string SectionName = "Internal";

    /// <summary>From <c>INTERNAL_SECRET</c> (a wrangler secret in production, handed over through the container's env).</summary>
    public string Secret { get; set; } = "";

    /// <summary>How far a request's timestamp may be from this machine's clock, either way.</summary>
    public TimeSpan MaxClockSkew { get; set; } = TimeSpan.FromMinutes(5);
}

/// <summary>
/// Every request except the health probes must be signed by the user's Durable Object (see
/// <see cref="InternalSignature"/>); anything else, e.g. a request sent straight to the service's port with a
/// forged X-User-Id, gets 401 before any endpoint runs.
/// </summary>
public static class InternalSignatureCheck
{
    /// <summary>Paths answered without a signature: the orchestrator's and the platform's health probes.</summary>
    private static readonly PathString[] OpenPaths = ["/health", "/alive"];

    public static TBuilder AddInternalSignature<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddOptions<InternalSignatureOptions>()
            .Bind(builder.Configuration.GetSection(InternalSignatureOptions.SectionName))
            .Configure(options => options.Secret = builder.Configuration[InternalSignature.SecretSetting] ?? options.Secret)
            .Validate(options => options.Secret.Length >= InternalSignature.MinSecretLength,
                $"{InternalSignature.SecretSetting} must be set to a secret of at least {InternalSignature.MinSecretLength} characters: " +
                "the service accepts only requests signed with it (the AppHost and the Durable Object provide it).")
            .Validate(options => options.MaxClockSkew > TimeSpan.Zero, "Internal:MaxClockSkew must be positive.")
            .ValidateOnStart();
        builder.Services.TryAddSingleton(TimeProvider.System);
        return builder;
    }

    /// <summary>First in the pipeline: sees the method and request target exactly as they arrived.</summary>
    public static IApplicationBuilder UseInternalSignature(this IApplicationBuilder app)
    {
        var options = app.ApplicationServices.GetRequiredService<IOptions<InternalSignatureOptions>>().Value;
        var time = app.ApplicationServices.GetRequiredService<TimeProvider>();
        var logger = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(InternalSignatureCheck));
        var key = System.Text.Encoding.UTF8.GetBytes(options.Secret);

        return app.Use((context, next) =>
        {
            if (OpenPaths.Any(path => context.Request.Path.Equals(path, StringComparison.OrdinalIgnoreCase)))
            {
                return next(context);
            }

            var problem = Check(context, key, options.MaxClockSkew, time.GetUtcNow());
            if (problem is null)
            {
                return next(context);
            }

            // Unsigned requests are routine (the container library's readiness probes GET / unsigned); a
            // signature that is presented but wrong or stale means a misconfigured secret, a skewed clock or tampering.
            var signed = context.Request.Headers.ContainsKey(InternalSignature.SignatureHeader);
            logger.Log(signed ? LogLevel.Warning : LogLevel.Debug,
                "Refused {Method} request without a valid internal signature: {Reason}", context.Request.Method, problem);
            return TypedResults.Problem(problem, statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized").ExecuteAsync(context);
        });
    }

    /// <returns>Null when the request is signed and fresh; otherwise why not.</returns>
    private static string? Check(HttpContext context, byte[] key, TimeSpan maxSkew, DateTimeOffset now)
    {
        var request = context.Request;
        var presented = request.Headers[InternalSignature.SignatureHeader].ToString();
        var timestampText = request.Headers[InternalSignature.TimestampHeader].ToString();
        if (presented.Length == 0 || timestampText.Length == 0)
        {
            return $"The request is not signed ({InternalSignature.TimestampHeader} and {InternalSignature.SignatureHeader} are required): " +
                   "the upload service is reached through the Worker only.";
        }

        if (!long.TryParse(timestampText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var timestamp)
            || Math.Abs(now.ToUnixTimeSeconds() - timestamp) > (long)maxSkew.TotalSeconds)
        {
            return $"The request's {InternalSignature.TimestampHeader} is not within {maxSkew.TotalSeconds:0} s of the service's clock.";
        }

        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? (request.PathBase + request.Path + request.QueryString).ToString();
        var expected = InternalSignature.Compute(
            key,
            timestamp,
            request.Method,
            request.Headers[UploadService.Tus.TusProtocol.Headers.MethodOverride].ToString(),
            target,
            request.Headers[UserId.HeaderName].ToString());
        return InternalSignature.Matches(expected, presented) ? null : $"The request's {InternalSignature.SignatureHeader} does not match it.";
    }
}
