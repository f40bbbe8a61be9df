using Aspire.Hosting;

namespace Integration.Tests;

/// <summary>
/// A bad switch stops the AppHost while it builds its graph with an exception that says what to do: the test
/// host that builds it sees the exception and lives on (an Environment.Exit would end this test run).
/// </summary>
public sealed class AppHostSetupTests
{
    [Theory]
    [InlineData("bogus", "unknown upload service mode 'bogus'")]
    [InlineData("wrangler", "--upload-service wrangler is not run by the AppHost")]
    public async Task A_bad_upload_service_mode_is_refused_with_the_reason(string mode, string reason)
    {
        var error = await Assert.ThrowsAsync<AppHostSetupException>(() =>
            DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>([$"--upload-service={mode}"]));

        Assert.Contains(reason, error.Message);
        Assert.Contains("use project, container, shared or auto", error.Message, StringComparison.OrdinalIgnoreCase);
    }
}
