namespace UploadService.Apis;

public static class RootApi
{
    public const string ServiceName = "upload-service";

    /// <summary>GET / answers cheaply: the container library probes the port with it.</summary>
    public static IEndpointRouteBuilder MapRootApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => TypedResults.Ok(new ServiceInfo(ServiceName)));
        return app;
    }

    public sealed record ServiceInfo(string Service);
}
