var builder = DistributedApplication.CreateBuilder(args);

// Secrets: the HS256 key that signs user tokens. Locally its default comes from appsettings.json
// (the same value `npm run token` uses); in production it is a wrangler secret.
var authSecret = builder.AddParameter("auth-secret", secret: true);
// The key the Durable Object signs its requests to the upload service with, which refuses unsigned ones:
// generated for each run locally; in production a wrangler secret handed to the container.
var internalSecret = builder.AddParameter("internal-secret", new GenerateParameterDefault { MinLength = 48, Special = false }, secret: true);

// Services: the upload service as a .NET project or as the image from UploadService/Dockerfile
// (`--upload-service project|container|auto`, see "Local modes" in the README); its files on its own disk,
// or with `--storage s3` in a bucket of a local S3-compatible server `s3` (R2 in production)
var uploadService = builder.AddUploadService("upload-service", internalSecret)
    .WithSelectedStorage("s3");

// Edge: the Worker and its per-user Durable Objects under `wrangler dev`, forwarding to the upload service;
// it also serves the upload page at / (the dashboard links to it signed in as a dev user)
builder.AddWorker("worker")
    .WithHttpEndpoint(port: builder.WorkerPort(), env: "PORT")
    .WithHttpHealthCheck("/health")
    .WithUploadPage(authSecret)
    .WithEnvironment("AUTH_SECRET", authSecret)
    .WithEnvironment(UploadServiceExtensions.InternalSecretVariable, internalSecret)
    .WithEnvironment("CONTAINER_ORIGIN", uploadService.GetEndpoint("http"))
    .WithOtlpExporter(OtlpProtocol.HttpJson)
    .WaitFor(uploadService);

builder.Build().Run();
