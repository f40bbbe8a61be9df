using UploadService.Apis;
using UploadService.Telemetry;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.Services.AddProblemDetails();
builder.AddFileStore();
builder.AddUploadLimits();
builder.AddTus();
builder.AddUploadMetrics();

var app = builder.Build();

app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseTus(); // before routing: X-HTTP-Method-Override picks the endpoint
app.UseRouting();

app.MapDefaultEndpoints();
app.MapRootApi();
app.MapFilesApi();
app.MapTusApi();

app.Run();
