using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Integration.Tests;

/// <summary>HS256 user tokens as the Worker expects them (sub = user id), minted with Microsoft.IdentityModel.</summary>
public static class Tokens
{
    public static string Create(string secret, string userId, DateTime? expires = null, DateTime? notBefore = null)
    {
        var now = DateTime.UtcNow;
        var exp = expires ?? now.AddHours(1);
        var nbf = notBefore ?? (exp < now ? exp.AddHours(-1) : now.AddSeconds(-5));
        var descriptor = new SecurityTokenDescriptor
        {
            Claims = new Dictionary<string, object> { ["sub"] = userId },
            IssuedAt = nbf,
            NotBefore = nbf,
            Expires = exp,
            SigningCredentials = new SigningCredentials(
                new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), SecurityAlgorithms.HmacSha256),
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }
}
