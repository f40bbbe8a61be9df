using System.Net;
using Amazon.Runtime;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using UploadService.Apis;

namespace UploadService.Tests;

/// <summary>
/// The storage service failing mid-request (an S3/R2 error or an unreachable endpoint) is a 503 with Retry-After,
/// never a bare 500. Driven directly: a running service whose bucket goes away mid-test cannot be arranged with the
/// shared s3rver, and a service whose bucket is unreachable at start-up does not start (its store opens the bucket).
/// </summary>
public sealed class StorageFailureHandlerTests
{
    public static TheoryData<Exception> StorageFailures => new()
    {
        new AmazonServiceException("We encountered an internal error. Please try again.", ErrorType.Receiver, "InternalError", "req", HttpStatusCode.InternalServerError),
        new HttpRequestException("Connection refused (127.0.0.1:9)", new System.Net.Sockets.SocketException(111)),
    };

    [Theory]
    [MemberData(nameof(StorageFailures))]
    public async Task A_storage_failure_is_503_problem_details_with_retry_after(Exception failure)
    {
        var (handler, context, body) = Arrange();

        Assert.True(await handler.TryHandleAsync(context, failure, CancellationToken.None));

        Assert.Equal(StatusCodes.Status503ServiceUnavailable, context.Response.StatusCode);
        Assert.Equal("5", context.Response.Headers.RetryAfter.ToString());
        Assert.StartsWith("application/problem+json", context.Response.ContentType);
        Assert.Contains("storage service", System.Text.Encoding.UTF8.GetString(body.ToArray()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_handled_storage_failure_is_logged_with_its_exception()
    {
        // The exception-handler middleware records nothing for an exception a handler handled (.NET 10).
        var (handler, context, _) = Arrange();
        context.Request.Method = "PUT";
        context.Request.Path = "/files/a.bin";
        var failure = new HttpRequestException("Connection refused");

        await handler.TryHandleAsync(context, failure, CancellationToken.None);

        var logged = Assert.Single(_logs.Collector.GetSnapshot());
        Assert.Equal(LogLevel.Error, logged.Level);
        Assert.Same(failure, logged.Exception);
        Assert.Contains("PUT /files/a.bin", logged.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Other_failures_are_left_to_the_other_handlers()
    {
        var (handler, context, _) = Arrange();
        Assert.False(await handler.TryHandleAsync(context, new InvalidOperationException("a bug"), CancellationToken.None));
    }

    private readonly FakeLogger<StorageFailureHandler> _logs = new();

    private (StorageFailureHandler, HttpContext, MemoryStream) Arrange()
    {
        var services = new ServiceCollection().AddLogging().AddProblemDetails().BuildServiceProvider();
        var body = new MemoryStream();
        var context = new DefaultHttpContext { RequestServices = services, Response = { Body = body } };
        context.Request.Headers.Accept = "application/json";
        return (new StorageFailureHandler(services.GetRequiredService<Microsoft.AspNetCore.Http.IProblemDetailsService>(), _logs), context, body);
    }
}
