using System.Globalization;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using UploadService.Security;
using UploadService.Storage;
using UploadService.Telemetry;
using UploadService.Tus;
using static UploadService.Tus.TusProtocol;

namespace UploadService.Apis;

/// <summary>
/// /uploads: a tus 1.0.0 server (core, creation, creation-with-upload, creation-defer-length, termination,
/// checksum, expiration, concatenation). A finished upload becomes a file in the user's /files namespace.
/// URLs it returns use the public origin the Worker forwards (X-Forwarded-Host/-Proto).
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
        builder.Services.AddSingleton<UploadLocks>();
        builder.Services.AddHostedService<ExpiredUploadSweeper>();
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

        uploads.MapMethods("", [HttpMethods.Options], Options);
        uploads.MapMethods("/{id}", [HttpMethods.Options], Options);
        uploads.MapPost("", Create).MeasuredAsUpload("tus");
        uploads.MapMethods("/{id}", [HttpMethods.Head], Head);
        uploads.MapMethods("/{id}", [HttpMethods.Patch], Patch).MeasuredAsUpload("tus");
        uploads.MapDelete("/{id}", Terminate);

        return app;
    }

    /// <summary>Every request but OPTIONS names the protocol version; another version → 412 with Tus-Version.</summary>
    private static async ValueTask<object?> RequireTusVersion(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        if (!HttpMethods.IsOptions(http.Request.Method) && http.Request.Headers[Headers.TusResumable] != TusProtocol.Version)
        {
            http.Response.Headers[Headers.TusVersion] = TusProtocol.Version;
            return Problem(StatusCodes.Status412PreconditionFailed,
                $"This server speaks tus {TusProtocol.Version}; send 'Tus-Resumable: {TusProtocol.Version}'.");
        }

        return await next(context);
    }

    /// <summary>OPTIONS: what this server supports.</summary>
    public static IResult Options(HttpResponse response, IOptions<UploadOptions> limits)
    {
        response.Headers[Headers.TusVersion] = TusProtocol.Version;
        response.Headers[Headers.TusExtension] = string.Join(',', TusProtocol.Extensions);
        response.Headers[Headers.TusMaxSize] = limits.Value.MaxFileBytes.ToString(CultureInfo.InvariantCulture);
        response.Headers[Headers.TusChecksumAlgorithm] = string.Join(',', ChecksumAlgorithms);
        return TypedResults.NoContent();
    }

    /// <summary>POST: creation (Upload-Length, or Upload-Defer-Length: 1, or Upload-Concat), with an optional first chunk.</summary>
    public static async Task<IResult> Create(
        HttpContext context, IUploadStore store, IOptions<UploadOptions> limits, IOptions<TusOptions> tus,
        TimeProvider time, UploadLocks locks, UserQuota quota, CancellationToken cancellationToken)
    {
        var request = context.Request;
        if (!FilesApi.TryGetUser(request, out var user, out var problem))
        {
            return problem;
        }

        var maxFileBytes = limits.Value.MaxFileBytes;
        var headers = request.Headers;
        var isPartial = false;
        IReadOnlyList<string>? partialIds = null;
        if (headers.ContainsKey(Headers.UploadConcat)
            && !TryParseConcat(headers[Headers.UploadConcat].ToString(), out isPartial, out partialIds, out var concatError))
        {
            return Problem(StatusCodes.Status400BadRequest, concatError);
        }

        long? length = null;
        if (partialIds is null)
        {
            if (headers.ContainsKey(Headers.UploadLength) && headers.ContainsKey(Headers.UploadDeferLength))
            {
                return Problem(StatusCodes.Status400BadRequest, "Send Upload-Length or Upload-Defer-Length, not both.");
            }

            if (headers.ContainsKey(Headers.UploadLength))
            {
                if (!TryParseLength(headers[Headers.UploadLength], out var declared))
                {
                    return Problem(StatusCodes.Status400BadRequest, "Upload-Length must be a non-negative integer.");
                }

                length = declared;
            }
            else if (headers[Headers.UploadDeferLength] != "1")
            {
                return Problem(StatusCodes.Status400BadRequest, "Send Upload-Length, or Upload-Defer-Length: 1.");
            }

            if (length > maxFileBytes)
            {
                return TooLarge(maxFileBytes);
            }
        }

        if (HasBody(request) && !IsOffsetContentType(request.ContentType))
        {
            return Problem(StatusCodes.Status415UnsupportedMediaType, $"A creation request with data takes Content-Type: {OffsetContentType}.");
        }

        var metadataHeader = headers[Headers.UploadMetadata].ToString();
        if (!TryParseMetadata(metadataHeader, out var metadata, out var metadataError))
        {
            return Problem(StatusCodes.Status400BadRequest, metadataError);
        }

        // Where the finished upload goes; partials have no name of their own.
        FileName? fileName = null;
        var contentType = FilesApi.DefaultContentType;
        if (!isPartial)
        {
            if (!metadata.TryGetValue("filename", out var name))
            {
                return Problem(StatusCodes.Status400BadRequest,
                    "Upload-Metadata needs a 'filename': the name the finished upload gets in /files.");
            }

            if (!FileName.TryParse(name, out fileName, out var nameError))
            {
                return Problem(StatusCodes.Status400BadRequest, "Invalid filename in Upload-Metadata: " + nameError);
            }

            if (metadata.TryGetValue("filetype", out var type)
                && !FilesApi.TryGetContentType(type, out contentType, out _))
            {
                return Problem(StatusCodes.Status400BadRequest, "Upload-Metadata 'filetype' is not a valid media type.");
            }
        }

        var now = time.GetUtcNow();
        var upload = new UploadRecord(
            NewUploadId(), length, 0, string.IsNullOrWhiteSpace(metadataHeader) ? null : metadataHeader.Trim(),
            isPartial, partialIds, now, now + tus.Value.Expiration);
        var location = PublicOrigin(request) + RoutePrefix + "/" + upload.Id;
        var response = context.Response;

        if (partialIds is not null)
        {
            return await CreateFinal(response, store, locks, user, upload, location, fileName!, contentType, maxFileBytes, cancellationToken);
        }

        // A declared length must fit the quota before the upload exists; a first chunk of a deferred one
        // reserves its Content-Length (or its bytes as they arrive).
        await using var lease = await quota.TryReserveAsync(user, length ?? request.ContentLength ?? 0, cancellationToken);
        if (lease is null)
        {
            return FilesApi.OverQuota(quota);
        }

        upload = await store.CreateUploadAsync(user, upload, cancellationToken);
        using var held = locks.TryAcquire(upload.Id)!; // new id: nobody else can hold it
        if (HasBody(request))
        {
            var appended = await AppendBody(context, store, user, upload, upload.Offset, null, maxFileBytes, tus.Value, time, lease, quota, cancellationToken);
            if (appended.Problem is not null)
            {
                // The upload exists; the client may resume it at the offset HEAD reports.
                response.Headers.Location = location;
                return appended.Problem;
            }

            upload = appended.Upload!;
        }

        if (UploadRules.ShouldComplete(upload))
        {
            upload = await Complete(store, user, upload, fileName!, contentType, cancellationToken);
        }

        response.Headers.Location = location;
        SetUploadHeaders(response, upload, withOffset: HasBody(request));
        return TypedResults.StatusCode(StatusCodes.Status201Created);
    }

    /// <summary>HEAD: the upload's offset (bytes safely stored), length, metadata, expiry; never cached.</summary>
    public static async Task<IResult> Head(
        string id, HttpRequest request, HttpResponse response, IUploadStore store, TimeProvider time, UploadLocks locks,
        CancellationToken cancellationToken)
    {
        response.Headers.CacheControl = "no-store";
        if (!FilesApi.TryGetUser(request, out var user, out var problem))
        {
            return problem;
        }

        var upload = IsUploadId(id) ? await store.GetUploadAsync(user, id, cancellationToken) : null;
        if (upload is null)
        {
            return NotFound(id);
        }

        if (upload.IsExpired(time.GetUtcNow()))
        {
            return Gone(id);
        }

        if (UploadRules.ShouldComplete(upload) && locks.TryAcquire(id) is { } held)
        {
            using (held)
            {
                upload = await FinishIfComplete(store, user, await store.GetUploadAsync(user, id, cancellationToken) ?? upload, cancellationToken);
            }
        }

        SetUploadHeaders(response, upload, withOffset: true);
        if (upload.Metadata is not null)
        {
            response.Headers[Headers.UploadMetadata] = upload.Metadata;
        }

        if (upload.IsPartial)
        {
            response.Headers[Headers.UploadConcat] = "partial";
        }
        else if (upload.PartialIds is { } partials)
        {
            var origin = PublicOrigin(request);
            response.Headers[Headers.UploadConcat] = "final;" + string.Join(' ', partials.Select(partial => origin + RoutePrefix + "/" + partial));
        }

        return TypedResults.Ok();
    }

    /// <summary>PATCH: appends the body at Upload-Offset; one request per upload at a time.</summary>
    public static async Task<IResult> Patch(
        string id, HttpContext context, IUploadStore store, IOptions<UploadOptions> limits, IOptions<TusOptions> tus,
        TimeProvider time, UploadLocks locks, UserQuota quota, CancellationToken cancellationToken)
    {
        var request = context.Request;
        if (!FilesApi.TryGetUser(request, out var user, out var problem))
        {
            return problem;
        }

        if (!IsOffsetContentType(request.ContentType))
        {
            return Problem(StatusCodes.Status415UnsupportedMediaType, $"PATCH takes Content-Type: {OffsetContentType}.");
        }

        if (!TryParseLength(request.Headers[Headers.UploadOffset], out var offset))
        {
            return Problem(StatusCodes.Status400BadRequest, "Upload-Offset must be a non-negative integer.");
        }

        long? declaredLength = null;
        if (request.Headers.ContainsKey(Headers.UploadLength))
        {
            if (!TryParseLength(request.Headers[Headers.UploadLength], out var parsed))
            {
                return Problem(StatusCodes.Status400BadRequest, "Upload-Length must be a non-negative integer.");
            }

            declaredLength = parsed;
        }

        ChunkChecksum? checksum = null;
        if (request.Headers.ContainsKey(Headers.UploadChecksum)
            && !TryParseChecksum(request.Headers[Headers.UploadChecksum], out checksum, out var checksumError))
        {
            return Problem(StatusCodes.Status400BadRequest, checksumError);
        }

        if (!IsUploadId(id))
        {
            return NotFound(id);
        }

        using var held = locks.TryAcquire(id);
        if (held is null)
        {
            return Problem(StatusCodes.Status423Locked, "Another request is writing to this upload; retry when it has finished.");
        }

        var upload = await store.GetUploadAsync(user, id, cancellationToken);
        if (upload is not null && !upload.IsExpired(time.GetUtcNow()))
        {
            upload = await FinishIfComplete(store, user, upload, cancellationToken);
        }

        var maxFileBytes = limits.Value.MaxFileBytes;
        var decision = UploadRules.CheckAppend(
            upload, time.GetUtcNow(), offset, declaredLength, request.ContentLength, maxFileBytes, out var next, out _);
        switch (decision)
        {
            case AppendDecision.NotFound: return NotFound(id);
            case AppendDecision.Expired: return Gone(id);
            case AppendDecision.Forbidden:
                return Problem(StatusCodes.Status403Forbidden, "The final upload of a concatenation cannot be patched.");
            case AppendDecision.Completed:
                return Problem(StatusCodes.Status403Forbidden, $"Upload '{id}' is complete and became /files/{upload!.FileName}; it takes no more bytes.");
            case AppendDecision.OffsetMismatch:
                return Problem(StatusCodes.Status409Conflict,
                    $"Upload-Offset is {offset} but the upload is at {upload!.Offset}; resume from the offset HEAD reports.");
            case AppendDecision.LengthConflict:
                return Problem(StatusCodes.Status400BadRequest, "Upload-Length cannot change once set, nor be below the offset.");
            case AppendDecision.TooLarge:
                return TooLarge(next.Length ?? maxFileBytes);
        }

        await using var lease = await quota.TryReserveAsync(user, request.ContentLength ?? 0, cancellationToken);
        if (lease is null)
        {
            return FilesApi.OverQuota(quota);
        }

        if (next != upload)
        {
            next = await store.UpdateUploadAsync(user, next, cancellationToken);
        }

        var appended = await AppendBody(context, store, user, next, offset, checksum, maxFileBytes, tus.Value, time, lease, quota, cancellationToken);
        if (appended.Problem is not null)
        {
            return appended.Problem;
        }

        upload = appended.Upload!;
        if (UploadRules.ShouldComplete(upload))
        {
            var (name, contentType) = Destination(upload);
            upload = await Complete(store, user, upload, name, contentType, cancellationToken);
        }

        SetUploadHeaders(context.Response, upload, withOffset: true);
        return TypedResults.NoContent();
    }

    /// <summary>DELETE (termination): the upload and its bytes are removed; a finished file stays in /files.</summary>
    public static async Task<IResult> Terminate(
        string id, HttpRequest request, IUploadStore store, UploadLocks locks, CancellationToken cancellationToken)
    {
        if (!FilesApi.TryGetUser(request, out var user, out var problem))
        {
            return problem;
        }

        if (!IsUploadId(id))
        {
            return NotFound(id);
        }

        using var held = locks.TryAcquire(id);
        if (held is null)
        {
            return Problem(StatusCodes.Status423Locked, "A request is writing to this upload; retry when it has finished.");
        }

        return await store.DeleteUploadAsync(user, id, cancellationToken) ? TypedResults.NoContent() : NotFound(id);
    }

    private static async Task<IResult> CreateFinal(
        HttpResponse response, IUploadStore store, UploadLocks locks, UserId user, UploadRecord final, string location,
        FileName fileName, string contentType, long maxFileBytes, CancellationToken cancellationToken)
    {
        // The partials are read while they are concatenated: nobody may write or terminate them meanwhile.
        var held = new List<IDisposable>();
        try
        {
            foreach (var partialId in final.PartialIds!.Distinct())
            {
                if (locks.TryAcquire(partialId) is not { } partialLock)
                {
                    return Problem(StatusCodes.Status423Locked, $"A request is using partial upload {partialId}; retry when it has finished.");
                }

                held.Add(partialLock);
            }

            return await Concatenate(response, store, user, final, location, fileName, contentType, maxFileBytes, cancellationToken);
        }
        finally
        {
            held.ForEach(partialLock => partialLock.Dispose());
        }
    }

    private static async Task<IResult> Concatenate(
        HttpResponse response, IUploadStore store, UserId user, UploadRecord final, string location, FileName fileName,
        string contentType, long maxFileBytes, CancellationToken cancellationToken)
    {
        var partials = new List<UploadRecord>();
        foreach (var partialId in final.PartialIds!)
        {
            var partial = await store.GetUploadAsync(user, partialId, cancellationToken);
            if (partial is null || !partial.IsPartial || partial.IsExpired(final.CreatedAt))
            {
                return Problem(StatusCodes.Status400BadRequest, $"Upload {partialId} is not a partial upload of yours (or it expired).");
            }

            if (!partial.IsComplete)
            {
                return Problem(StatusCodes.Status400BadRequest, $"Partial upload {partialId} is not complete yet.");
            }

            partials.Add(partial);
        }

        var length = partials.Sum(partial => partial.Length!.Value);
        if (length > maxFileBytes)
        {
            return TooLarge(maxFileBytes);
        }

        var (upload, _) = await store.ConcatenateAsync(
            user, final with { Length = length }, partials, fileName, contentType, maxFileBytes, cancellationToken);
        response.Headers.Location = location;
        SetUploadHeaders(response, upload, withOffset: false);
        return TypedResults.StatusCode(StatusCodes.Status201Created);
    }

    private sealed record Outcome(UploadRecord? Upload, IResult? Problem);

    /// <summary>Appends the request body within <paramref name="lease"/>, and tells the lease what stays stored.</summary>
    private static async Task<Outcome> AppendBody(
        HttpContext context, IUploadStore store, UserId user, UploadRecord upload, long offset, ChunkChecksum? checksum,
        long maxFileBytes, TusOptions tus, TimeProvider time, UserQuota.QuotaLease lease, UserQuota quota,
        CancellationToken cancellationToken)
    {
        var maxBytes = (upload.Length ?? maxFileBytes) - offset;
        try
        {
            var expiresAt = time.GetUtcNow() + tus.Expiration;
            lease.KeepAll(); // until the store says how much: a failed append may keep any part of the chunk
            var appended = await store.AppendAsync(user, upload, lease.Wrap(context.Request.Body), maxBytes, checksum, expiresAt, cancellationToken);
            lease.Keep(appended.Offset - offset);
            return new(appended, null);
        }
        catch (QuotaExceededException)
        {
            lease.Keep(0); // the chunk was discarded
            return new(null, Problem(StatusCodes.Status413PayloadTooLarge, quota.Describe()));
        }
        catch (ChecksumMismatchException ex)
        {
            return new(null, Problem(ChecksumMismatchStatus, ex.Message, "Checksum Mismatch"));
        }
        catch (FileTooLargeException)
        {
            return new(null, TooLarge(upload.Length ?? maxFileBytes));
        }
        catch (UploadContentException ex)
        {
            return new(null, ex.InnerException is BadHttpRequestException bad
                ? Problem(bad.StatusCode, bad.Message)
                : Problem(StatusCodes.Status400BadRequest, ex.Message));
        }
    }

    /// <summary>
    /// An upload with every byte persisted that is not a file yet (the service stopped in between, or the store
    /// records completion only by moving the bytes) becomes one now, so that a client which sees
    /// Upload-Offset == Upload-Length can rely on the file being there. Call with the upload's lock held.
    /// </summary>
    private static async Task<UploadRecord> FinishIfComplete(
        IUploadStore store, UserId user, UploadRecord upload, CancellationToken cancellationToken)
    {
        if (!UploadRules.ShouldComplete(upload))
        {
            return upload;
        }

        var (name, contentType) = Destination(upload);
        return await Complete(store, user, upload, name, contentType, cancellationToken);
    }

    private static async Task<UploadRecord> Complete(
        IUploadStore store, UserId user, UploadRecord upload, FileName name, string contentType, CancellationToken cancellationToken) =>
        (await store.CompleteUploadAsync(user, upload, name, contentType, cancellationToken)).Upload;

    /// <summary>The file a (non-partial) upload becomes; validated at creation, so parsing again cannot fail.</summary>
    private static (FileName Name, string ContentType) Destination(UploadRecord upload)
    {
        TryParseMetadata(upload.Metadata, out var metadata, out _);
        var name = FileName.TryParse(metadata!["filename"], out var parsed, out var error)
            ? parsed
            : throw new InvalidOperationException("Stored upload has an invalid filename: " + error);
        return (name, metadata.TryGetValue("filetype", out var type) && !string.IsNullOrWhiteSpace(type)
            ? type.Trim()
            : FilesApi.DefaultContentType);
    }

    private static void SetUploadHeaders(HttpResponse response, UploadRecord upload, bool withOffset)
    {
        if (withOffset)
        {
            response.Headers[Headers.UploadOffset] = upload.Offset.ToString(CultureInfo.InvariantCulture);
        }

        if (upload.Length is { } length)
        {
            response.Headers[Headers.UploadLength] = length.ToString(CultureInfo.InvariantCulture);
        }
        else
        {
            response.Headers[Headers.UploadDeferLength] = "1";
        }

        if (upload.FileName is null)
        {
            response.Headers[Headers.UploadExpires] = FormatExpires(upload.ExpiresAt);
        }
        else
        {
            // Where the finished upload can be read (an extension header; same origin as Location).
            response.Headers["Upload-File"] = "/files/" + string.Join('/', upload.FileName.Split(FileName.Separator).Select(Uri.EscapeDataString));
        }
    }

    /// <summary>The Worker's public origin (it sets both headers); the request's own when called directly.</summary>
    public static string PublicOrigin(HttpRequest request)
    {
        var proto = request.Headers["X-Forwarded-Proto"].ToString().Split(',')[0].Trim().ToLowerInvariant();
        if (proto is not ("http" or "https"))
        {
            proto = request.Scheme;
        }

        var forwardedHost = request.Headers["X-Forwarded-Host"].ToString().Split(',')[0].Trim();
        var host = forwardedHost.Length > 0 && Uri.CheckHostName(new HostString(forwardedHost).Host) != UriHostNameType.Unknown
            ? new HostString(forwardedHost)
            : request.Host;
        return proto + "://" + host.ToUriComponent();
    }

    private static bool HasBody(HttpRequest request) =>
        request.ContentLength > 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count > 0);

    private static bool IsOffsetContentType(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var media)
        && string.Equals(media.MediaType.Value, OffsetContentType, StringComparison.OrdinalIgnoreCase);


    private static IResult NotFound(string id) => Problem(StatusCodes.Status404NotFound, $"There is no upload '{id}'.");

    private static IResult Gone(string id) =>
        Problem(StatusCodes.Status410Gone, $"Upload '{id}' expired; its bytes are being deleted. Start a new upload.");

    private static IResult TooLarge(long maxBytes) =>
        Problem(StatusCodes.Status413PayloadTooLarge, $"The upload would exceed {maxBytes} bytes.");

    private static IResult Problem(int statusCode, string detail, string? title = null) =>
        TypedResults.Problem(detail: detail, statusCode: statusCode, title: title);
}
