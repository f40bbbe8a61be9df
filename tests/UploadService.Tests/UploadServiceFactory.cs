using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace UploadService.Tests;

/// <summary>
/// The real service (its Program.cs) on real Kestrel, bound to 127.0.0.1 on a free port, storing under
/// a temp folder, with a small upload limit so that the 413 paths are cheap to reach.
/// </summary>
public sealed class UploadServiceFactory : WebApplicationFactory<Program>
{
    public const long MaxFileBytes = 64 * 1024;

    private readonly TempDirectory _storage = new();
    private readonly Lazy<HttpClient> _client;
    private readonly IReadOnlyDictionary<string, string> _settings;

    public UploadServiceFactory() : this(new Dictionary<string, string>())
    {
    }

    /// <summary>With extra configuration (e.g. <c>Tus:Expiration</c>) on top of the defaults.</summary>
    public static UploadServiceFactory WithSettings(IReadOnlyDictionary<string, string> settings) => new(settings);

    private UploadServiceFactory(IReadOnlyDictionary<string, string> settings)
    {
        _settings = settings;
        UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        _client = new Lazy<HttpClient>(() =>
        {
            StartServer();
            var address = Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            return new HttpClient { BaseAddress = new Uri(address) };
        });
    }

    public string StorageRoot => _storage.Path;

    /// <summary>A plain HttpClient on the Kestrel address (no in-memory handler involved).</summary>
    public HttpClient Client => _client.Value;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Storage:Root", _storage.Path);
        builder.UseSetting("Upload:MaxFileBytes", MaxFileBytes.ToString(CultureInfo.InvariantCulture));
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && _client.IsValueCreated)
        {
            _client.Value.Dispose();
        }

        base.Dispose(disposing);
        if (disposing)
        {
            _storage.Dispose();
        }
    }
}
