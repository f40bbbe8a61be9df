using Microsoft.Extensions.Hosting;
using Microsoft.AspNetCore.Connections;
using UploadService.Hosting;
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using UploadService.Security;

namespace UploadService.Tests;

/// <summary>
/// The real service (its Program.cs) on real Kestrel, bound to 127.0.0.1 on a free port, storing under
/// a temp folder, with a small upload limit so that the 413 paths are cheap to reach. Its <see cref="Client"/>
/// signs every request as the Durable Object does; <see cref="UnsignedClient"/> doesn't.
/// </summary>
public sealed class UploadServiceFactory : WebApplicationFactory<Program>
{
    public const long MaxFileBytes = 64 * 1024;

    private readonly TempDirectory _storage = new();
    public static readonly string InternalSecret = $"upload-service-tests-{Guid.NewGuid():N}";

    private readonly Lazy<Uri> _address;
    private readonly Lazy<HttpClient> _client;
    private readonly Lazy<HttpClient> _unsignedClient;
    private readonly IReadOnlyDictionary<string, string> _settings;
    private readonly Action<IServiceCollection>? _services;

    public UploadServiceFactory() : this(new Dictionary<string, string>(), null)
    {
    }

    /// <summary>
    /// With extra configuration (e.g. <c>Tus:Expiration</c>) on top of the defaults, and services registered
    /// after the service's own (a replacement wins).
    /// </summary>
    public static UploadServiceFactory WithSettings(
        IReadOnlyDictionary<string, string> settings, Action<IServiceCollection>? services = null) => new(settings, services);

    private UploadServiceFactory(IReadOnlyDictionary<string, string> settings, Action<IServiceCollection>? services)
    {
        _settings = settings;
        _services = services;
        UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        _address = new Lazy<Uri>(() =>
        {
            StartServer();
            return new Uri(Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single());
        });
        _client = new Lazy<HttpClient>(() => new HttpClient(
            new InternalSignature.SigningHandler(InternalSecret, new SocketsHttpHandler())) { BaseAddress = _address.Value });
        _unsignedClient = new Lazy<HttpClient>(() => new HttpClient { BaseAddress = _address.Value });
    }

    public string StorageRoot => _storage.Path;

    /// <summary>A real HttpClient on the Kestrel address (no in-memory handler involved), signing like the Durable Object.</summary>
    public HttpClient Client => _client.Value;

    /// <summary>The same without the signature: what a caller that bypasses the Worker sends.</summary>
    public HttpClient UnsignedClient => _unsignedClient.Value;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting(InternalSignature.SecretSetting, InternalSecret);
        builder.UseSetting("Storage:Root", _storage.Path);
        builder.UseSetting("Upload:MaxFileBytes", MaxFileBytes.ToString(CultureInfo.InvariantCulture));
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }
    }

    protected override IHost CreateHost(IHostBuilder builder)
    {
        // Program registers the socket read pool, but UseKestrel above registers Kestrel's own pool after
        // Program's services; put ours back on top so the tests' requests read through it too.
        builder.ConfigureServices(services =>
        {
            services.AddSingleton<IMemoryPoolFactory<byte>, ReceiveBufferPool.Factory>();
            _services?.Invoke(services);
        });
        return base.CreateHost(builder);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var client in new[] { _client, _unsignedClient }.Where(client => client.IsValueCreated))
            {
                client.Value.Dispose();
            }
        }

        base.Dispose(disposing);
        if (disposing)
        {
            _storage.Dispose();
        }
    }
}
