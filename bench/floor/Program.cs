// The floor for the start-up target (bench, issue 17): CreateSlimBuilder and one endpoint, compiled with Native AOT.
var app = WebApplication.CreateSlimBuilder(args).Build();
app.MapGet("/health", () => "Healthy");
app.Run();
