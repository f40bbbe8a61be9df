namespace UploadService.Apis;

public static class RootApi
{
    public const string ServiceName = "upload-service";

    /// <summary>
    /// GET / names the service to a signed caller. The container library's readiness ping of / is unsigned: the
    /// signature check answers it (401), and any answer is all the ping waits for.
    /// </summary>
    public static IEndpointRouteBuilder MapRootApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => TypedResults.Ok(new ServiceInfo(ServiceName)));
        return app;
    }

    public sealed record ServiceInfo(string Service);
}
