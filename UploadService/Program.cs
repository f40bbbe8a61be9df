using UploadService.Apis;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.Services.AddProblemDetails();
builder.Services.AddExceptionHandler<StorageFullHandler>();
builder.AddFileStore();
builder.AddUploadLimits();
builder.AddTus();

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
