using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Aspire.Hosting;

/// <summary>
/// HS256 user tokens as the Worker verifies them (sub = user id), signed with the auth secret, as
/// `npm run token` makes them: the one .NET way to mint one, for the AppHost's dashboard commands, the
/// integration tests and the bench (which compiles this file in).
/// </summary>
public static class UserTokens
{
    /// <summary>A token valid from a few seconds ago for <paramref name="lifetime"/>.</summary>
    public static string Create(string secret, string userId, TimeSpan lifetime, bool admin = false) =>
        Create(secret, userId, DateTime.UtcNow.Add(lifetime), admin: admin);

    /// <summary>
    /// A token that expires at <paramref name="expires"/> (in the past for an expired one) and is valid from
    /// <paramref name="notBefore"/> (by default a few seconds ago, or an hour before an expiry already past);
    /// with <paramref name="admin"/> it carries <c>role: "admin"</c>, which the admin API asks for.
    /// </summary>
    public static string Create(string secret, string userId, DateTime expires, DateTime? notBefore = null, bool admin = false)
    {
        var now = DateTime.UtcNow;
        // Issued a moment ago (an hour before an expiry already past), whatever notBefore says, so that a token
        // not yet valid is refused for its nbf alone.
        var issued = expires < now ? expires.AddHours(-1) : now.AddSeconds(-5);
        var nbf = notBefore ?? issued;
        var claims = new Dictionary<string, object> { ["sub"] = userId };
        if (admin) claims["role"] = "admin";
        var descriptor = new SecurityTokenDescriptor
        {
            Claims = claims,
            IssuedAt = issued,
            NotBefore = nbf,
            Expires = expires,
            SigningCredentials = new SigningCredentials(
                new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), SecurityAlgorithms.HmacSha256),
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }
}
