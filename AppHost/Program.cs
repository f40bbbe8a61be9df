using System.Reflection;

try
{
    var builder = DistributedApplication.CreateBuilder(args);

    // Secrets: the HS256 key that signs user tokens. Locally its default comes from appsettings.json
    // (the same value `npm run token` uses); in production it is a wrangler secret.
    var authSecret = builder.AddParameter("auth-secret", secret: true);
    // The key the Durable Object signs its requests to the upload service with, which refuses unsigned ones:
    // generated for each run locally; in production a wrangler secret handed to the container.
    var internalSecret = builder.AddParameter("internal-secret", new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true);

    // Edge: the Worker and its per-user Durable Objects under `wrangler dev` (the development entry point, which
    // gives each Durable Object its local container); it also serves the upload page at / (the dashboard links to
    // it signed in as a dev user)
    var worker = builder.AddWorker("worker")
        .WithHttpEndpoint(port: builder.WorkerPort(), env: "PORT")
        .WithHttpHealthCheck("/health")
        .WithUploadPage(authSecret)
        .WithEnvironment("AUTH_SECRET", authSecret)
        .WithEnvironment(UploadServiceExtensions.InternalSecretVariable, internalSecret)
        .WithOtlpExporter(OtlpProtocol.HttpJson);

    // Containers: what the Durable Objects run (`--upload-service`, see docs/local-modes.md). Each user's
    // object gets its own upload-service instance from the local container runtime `user-containers`, with the
    // environment the object passes (secrets, storage, telemetry), as on Cloudflare: a process of the project, or
    // with `container` a container of the image. `shared` runs one `upload-service` that every object forwards to.
    var mode = builder.SelectUploadServiceMode();

    // Storage (`--storage`, see docs/local-modes.md): by default R2 as production reaches it, wrangler dev's emulation
    // behind each user's Durable Object; `s3` a local S3-compatible server `s3` with its keys in every instance (the
    // shared mode's default); `filesystem` each instance's own disk, gone when it sleeps
    var storage = builder.SelectLocalStorage(mode);
    var s3 = storage == LocalStorage.S3 ? builder.AddLocalS3("s3") : null;
    if (mode == UploadServiceMode.Shared)
    {
        var uploadService = builder.AddSharedUploadService(UploadServiceExtensions.ServiceName, internalSecret)
            .WithStorage(s3);
        worker.WithEnvironment("CONTAINER_ORIGIN", uploadService.GetEndpoint("http"))
            .WaitFor(uploadService);
    }
    else
    {
        var runtime = builder.AddContainerRuntime("user-containers",
            mode == UploadServiceMode.Project ? null : builder.ContainerEngine(), ifEngineAnswers: mode == UploadServiceMode.Auto);
        worker.WithContainerRuntime(runtime, authSecret)
            .WithStorage(storage, s3);
    }

    builder.Build().Run();
}
catch (AppHostSetupException error) when (Assembly.GetEntryAssembly() == typeof(Program).Assembly)
{
    // A missing prerequisite or a bad switch: one readable line and exit code 1, not a stack trace. (A test host
    // that builds the AppHost is another entry assembly: it gets the exception.)
    Console.Error.WriteLine("error: " + error.Message);
    return 1;
}

return 0;
