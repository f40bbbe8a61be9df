using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using UploadService.Apis;
using UploadService.Storage;

namespace UploadService.Tus;

/// <summary>What the tus endpoints work with, bound as one parameter (<c>[AsParameters]</c>).</summary>
public sealed record TusContext(
    [FromServices] ITusStore Store,
    [FromServices] TusLocks Locks,
    [FromServices] TusRunningHashes Hashes,
    [FromServices] UserQuota Quota,
    [FromServices] TimeProvider Time,
    [FromServices] IOptions<UploadOptions> Limits,
    [FromServices] IOptions<TusOptions> Options)
{
    public long MaxFileBytes => Limits.Value.MaxFileBytes;

    /// <summary>An upload's expiry when a request touches it now (sliding).</summary>
    public DateTimeOffset NextExpiry() => Time.GetUtcNow() + Options.Value.Expiration;
}
