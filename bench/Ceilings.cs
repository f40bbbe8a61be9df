using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bench;

/// <summary>What this machine can do at best with the same bytes: disk with fsync, sha256, loopback HTTP.</summary>
public static class Ceilings
{
    /// <summary>Writes the bytes to a new file in <paramref name="directory"/> (1 MiB writes, unbuffered by .NET) and fsyncs it.</summary>
    public static async Task DiskWithFsync(string directory, long length)
    {
        var path = Path.Combine(directory, $"ceiling-{Guid.NewGuid():N}.bin");
        try
        {
            await using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0))
            {
                await Payload.ForEachSlice(0, length, 1024 * 1024, slice => file.WriteAsync(slice));
                file.Flush(flushToDisk: true);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// One small file as an upload server stores it at best: create it in <paramref name="directory"/>, write
    /// <paramref name="length"/> bytes, fsync. Kept (not deleted), as the uploads' files are: freeing inodes
    /// would slow the creations after it (ext4 without a journal skips recently freed inodes).
    /// </summary>
    public static void SmallFileWithFsync(string directory, int length)
    {
        using var file = new FileStream(Path.Combine(directory, $"{Guid.NewGuid():N}.bin"), FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0);
        file.Write(Payload.Block.AsSpan(0, length));
        file.Flush(flushToDisk: true);
    }

    public static async Task Sha256(long length)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await Payload.ForEachSlice(0, length, 1024 * 1024, slice =>
        {
            hash.AppendData(slice.Span);
            return ValueTask.CompletedTask;
        });
        hash.GetHashAndReset();
    }
}

/// <summary>The trivial sink: an in-process Kestrel on 127.0.0.1 that reads every request body and discards it.</summary>
public sealed class Sink : IAsyncDisposable
{
    readonly WebApplication app;
    public Uri Url { get; }

    Sink(WebApplication app, Uri url)
    {
        this.app = app;
        Url = url;
    }

    public static async Task<Sink> Start(int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = null);
        // The same socket reads as the upload service (64 KiB blocks): a ceiling should not be slower at
        // receiving than the server it is compared with.
        builder.Services.AddSingleton<IMemoryPoolFactory<byte>, UploadService.Hosting.ReceiveBufferPool.Factory>();
        var app = builder.Build();
        app.Run(async context =>
        {
            await Discard.Drain(context.Request.Body);
            context.Response.StatusCode = StatusCodes.Status204NoContent;
        });
        await app.StartAsync();
        return new Sink(app, new Uri($"http://127.0.0.1:{port}/"));
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}
