using System.Net.Http.Json;
using Aspire.Hosting.ApplicationModel;

namespace Aspire.Hosting;

/// <summary>
/// The <i>Stop</i> and <i>Destroy</i> commands of each user's container in the dashboard. They go through the
/// Worker's admin API (<c>POST /admin/containers/{user}/stop</c>, <c>DELETE /admin/containers/{user}</c>) with
/// an admin token, so that the Durable Object stops its container as it would on Cloudflare, and the local
/// commands exercise the production code path.
/// </summary>
/// <param name="worker">The Worker's endpoint.</param>
/// <param name="authSecret">The key the admin token is signed with.</param>
public sealed class AdminApiCommands(EndpointReference worker, ParameterResource authSecret)
{
    private const string AdminUser = "aspire-dashboard";
    private static readonly TimeSpan TokenLifetime = TimeSpan.FromMinutes(5);
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    public const string StopCommand = "admin-stop";
    public const string DestroyCommand = "admin-destroy";

    /// <summary>Adds the commands to the dashboard row of one instance of <paramref name="user"/>'s container.</summary>
    public void AddTo(IResource instance, string user)
    {
        instance.Annotations.Add(new ResourceCommandAnnotation(StopCommand, "Stop",
            WhileRunning, context => SendAsync(HttpMethod.Post, $"/admin/containers/{user}/stop", context.CancellationToken),
            $"Stops {user}'s container through the Worker's admin API: its Durable Object sends SIGTERM.",
            parameter: null, confirmationMessage: null, iconName: "Stop", iconVariant: IconVariant.Regular, isHighlighted: true));
        instance.Annotations.Add(new ResourceCommandAnnotation(DestroyCommand, "Destroy",
            WhileRunning, context => SendAsync(HttpMethod.Delete, $"/admin/containers/{user}", context.CancellationToken),
            $"Destroys {user}'s container through the Worker's admin API: its Durable Object sends SIGKILL.",
            parameter: null, confirmationMessage: $"Destroy {user}'s container (SIGKILL)? Requests in flight fail.",
            iconName: "Delete", iconVariant: IconVariant.Regular, isHighlighted: false));
    }

    private static ResourceCommandState WhileRunning(UpdateCommandStateContext context) =>
        context.ResourceSnapshot.State?.Text == KnownResourceStates.Running ? ResourceCommandState.Enabled : ResourceCommandState.Disabled;

    private async Task<ExecuteCommandResult> SendAsync(HttpMethod method, string path, CancellationToken cancellationToken)
    {
        var secret = await authSecret.GetValueAsync(cancellationToken)
            ?? throw new InvalidOperationException("The auth-secret parameter has no value.");
        using var request = new HttpRequestMessage(method, new Uri(new Uri(worker.Url), path));
        request.Headers.Authorization = new("Bearer", UserTokens.Create(secret, AdminUser, TokenLifetime, admin: true));
        try
        {
            using var response = await Http.SendAsync(request, cancellationToken);
            if (response.IsSuccessStatusCode) return CommandResults.Success();
            var problem = await response.Content.ReadFromJsonAsync<Problem>(cancellationToken);
            return CommandResults.Failure($"{method} {path}: {(int)response.StatusCode} {problem?.Detail}");
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
        {
            return CommandResults.Failure($"{method} {path}: {ex.Message}");
        }
    }

    private sealed record Problem(string? Detail);
}
