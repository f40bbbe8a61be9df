using Microsoft.AspNetCore.Connections;
using UploadService.Apis;
using UploadService.Hosting;
using UploadService.Security;
using UploadService.Storage;
using UploadService.Telemetry;
using UploadService.Tus;

var builder = WebApplication.CreateSlimBuilder(args);

builder.AddServiceDefaults();
builder.Services.AddSingleton<IMemoryPoolFactory<byte>, ReceiveBufferPool.Factory>(); // socket reads of 64 KiB, not 4 KiB
builder.Services.AddProblemDetails();
HttpJson.AddTo(builder.Services);
builder.AddInternalSignature();
builder.Services.AddExceptionHandler<BadRequestHandler>();
builder.Services.AddExceptionHandler<StorageFailureHandler>();
builder.AddFileStore();
builder.AddUploadLimits();
builder.AddTus();
builder.AddUploadMetrics();

var app = builder.Build();
app.LogMemoryLimit();

app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseInternalSignature(); // before UseTus: the method and target exactly as the Durable Object signed them
app.UseTus(); // before routing: X-HTTP-Method-Override picks the endpoint
app.UseRouting();

app.MapDefaultEndpoints();
app.MapFilesApi();
app.MapTusApi();

app.Run();
