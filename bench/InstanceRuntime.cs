using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Bench;

/// <summary>
/// The part of the AppHost's local container runtime (AppHost/ContainerRuntime) that the Worker's development entry
/// point calls (worker/src/dev/runtime-container.ts), for the rows of the default storage: a Durable Object asks it
/// for an instance with the environment it passes (storage through the object's outbound handler, at the Worker's
/// outbound route), and it starts the upload service with that environment, as the AppHost does. The bench drives one
/// user, so one instance at a time.
/// </summary>
public sealed class InstanceRuntime : IAsyncDisposable
{
    /// <summary>Starts the service with the Durable Object's environment; returns it and the port it listens on.</summary>
    public delegate Task<(Child Child, int Port)> StartInstance(string name, Dictionary<string, string> environment);

    readonly WebApplication app;
    readonly Dictionary<string, Child> instances = [];
    readonly Lock gate = new();

    public Uri Url { get; }
    public string Token { get; } = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    /// <summary>The instance started last (the bench's one user's), once the Durable Object has asked for it.</summary>
    public Child? Instance { get; private set; }
    public int InstancePort { get; private set; }

    InstanceRuntime(StartInstance start)
    {
        var port = Ports.Free();
        Url = new Uri($"http://127.0.0.1:{port}/");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders(); // its long polls would fill the bench's console
        app = builder.Build();
        app.Urls.Add(Url.ToString());
        app.Use(async (context, next) =>
        {
            if (context.Request.Headers.Authorization != $"Bearer {Token}") context.Response.StatusCode = 401;
            else await next(context);
        });
        app.MapPost("/instances", async (HttpRequest request) =>
        {
            using var body = await JsonDocument.ParseAsync(request.Body);
            var name = body.RootElement.GetProperty("name").GetString() ?? "instance";
            var environment = body.RootElement.GetProperty("env").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "");
            var (child, instancePort) = await start(name, environment);
            var id = $"{name}-{child.Pid}";
            lock (gate) instances[id] = child;
            (Instance, InstancePort) = (child, instancePort);
            return Results.Json(new Dictionary<string, object> { ["id"] = id, ["ports"] = new Dictionary<string, int> { ["8000"] = instancePort } });
        });
        app.MapGet("/instances/{id}/exit", async (string id, int? wait) =>
        {
            if (Find(id) is not { } child) return Results.NotFound();
            var until = DateTime.UtcNow.AddSeconds(wait ?? 0);
            while (!child.Exited && DateTime.UtcNow < until) await Task.Delay(100);
            return Results.Json(child.Exited ? new { exited = true } : (object)new { exited = false });
        });
        app.MapPost("/instances/{id}/signal", async (string id, HttpRequest request) =>
        {
            if (Find(id) is not { } child) return Results.NotFound();
            using var body = await JsonDocument.ParseAsync(request.Body);
            Child.Signal(child.Pid, body.RootElement.GetProperty("signal").GetInt32());
            return Results.Json(new { });
        });
        app.MapDelete("/instances/{id}", (string id) =>
        {
            if (Find(id) is not { } child) return Results.NotFound();
            Child.Signal(child.Pid, 9);
            return Results.Json(new { });
        });
    }

    public static async Task<InstanceRuntime> Start(StartInstance start)
    {
        var runtime = new InstanceRuntime(start);
        await runtime.app.StartAsync();
        return runtime;
    }

    Child? Find(string id)
    {
        lock (gate) return instances.GetValueOrDefault(id);
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
        foreach (var child in instances.Values) await child.DisposeAsync();
    }
}
