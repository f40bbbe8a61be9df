using System.Net;

namespace Integration.Tests;

[Collection(AppCollection.Name)]
public sealed class AuthTests(AppFixture app)
{
    [Fact]
    public async Task Health_needs_no_token()
    {
        using var client = app.CreateWorkerClient();
        using var response = await client.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task A_request_straight_to_the_upload_service_with_a_forged_user_id_is_401_and_stores_nothing()
    {
        using var direct = new HttpClient { BaseAddress = app.UploadServiceUrl };
        using var put = new HttpRequestMessage(HttpMethod.Put, "/files/forged.txt") { Content = new ByteArrayContent([1, 2, 3]) };
        put.Headers.Add("X-User-Id", "alice");
        using var response = await direct.SendAsync(put);
        await TestContent.AssertProblemAsync(response, HttpStatusCode.Unauthorized);

        // The service's health probe stays open; through the Worker, alice has no such file.
        using var health = await direct.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        using var client = app.CreateWorkerClient("alice");
        using var get = await client.GetAsync("/files/forged.txt");
        Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
    }

    [Fact]
    public async Task Request_without_token_is_401_problem()
    {
        using var client = app.CreateWorkerClient();
        using var response = await client.PutAsync("/files/x.txt", new ByteArrayContent([1, 2, 3]));
        await TestContent.AssertProblemAsync(response, HttpStatusCode.Unauthorized);
        Assert.Contains(response.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");
    }

    [Fact]
    public async Task Expired_token_is_401_problem()
    {
        var token = UserTokens.Create(app.AuthSecret, "alice", DateTime.UtcNow.AddMinutes(-5));
        await AssertRejectedAsync(token);
    }

    [Fact]
    public async Task Token_not_yet_valid_is_401_problem()
    {
        var token = UserTokens.Create(app.AuthSecret, "alice",
            expires: DateTime.UtcNow.AddHours(2), notBefore: DateTime.UtcNow.AddHours(1));
        await AssertRejectedAsync(token);
    }

    [Fact]
    public async Task Token_signed_with_another_secret_is_401_problem()
    {
        var token = UserTokens.Create($"another-secret-{Guid.NewGuid():N}-{Guid.NewGuid():N}", "alice", TimeSpan.FromHours(1));
        await AssertRejectedAsync(token);
    }

    [Theory]
    [InlineData("..")]
    [InlineData("alice/bob")]
    [InlineData("")]
    public async Task Token_with_an_invalid_user_id_is_401_problem(string userId)
    {
        await AssertRejectedAsync(UserTokens.Create(app.AuthSecret, userId, TimeSpan.FromHours(1)));
    }

    private async Task AssertRejectedAsync(string token)
    {
        using var client = app.CreateWorkerClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/files");
        request.Headers.Authorization = new("Bearer", token);
        using var response = await client.SendAsync(request);
        await TestContent.AssertProblemAsync(response, HttpStatusCode.Unauthorized);
    }
}
