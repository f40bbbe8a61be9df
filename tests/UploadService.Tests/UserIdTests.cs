using UploadService.Domain;

namespace UploadService.Tests;

public class UserIdTests
{
    [Theory]
    [InlineData("alice")]
    [InlineData("A")]
    [InlineData("user_42")]
    [InlineData("a.b-c_d")]
    [InlineData("0123456789")]
    [InlineData(".")]  // allowed by the header grammar; stores hash it, so it is no path
    [InlineData("..")]
    public void Valid_user_ids_are_accepted(string candidate)
    {
        Assert.True(UserId.TryParse(candidate, out var userId, out var error), error);
        Assert.Equal(candidate, userId.Value);
    }

    [Fact]
    public void User_id_of_128_characters_is_accepted_and_129_is_not()
    {
        Assert.True(UserId.TryParse(new string('u', UserId.MaxLength), out _, out _));
        Assert.False(UserId.TryParse(new string('u', UserId.MaxLength + 1), out _, out var error));
        Assert.Contains("128", error);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("alice bob")]
    [InlineData("a/b")]
    [InlineData("../etc")]
    [InlineData("a\\b")]
    [InlineData("a\0")]
    [InlineData("a\n")]
    [InlineData("%2e%2e")]
    [InlineData("al:ce")]
    [InlineData("ålice")]
    [InlineData("alice,bob")]
    public void Invalid_user_ids_are_rejected(string? candidate)
    {
        Assert.False(UserId.TryParse(candidate, out var userId, out var error));
        Assert.Null(userId);
        Assert.False(string.IsNullOrEmpty(error));
    }
}
