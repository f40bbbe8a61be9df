using Aspire.Hosting;

namespace Integration.Tests;

/// <summary>
/// The local runtime enforces the <c>max_instances</c> of the wrangler.toml that deploys (the per-user tests
/// override it with <c>Containers:MaxInstances</c>, so this is where the file's own value is read).
/// </summary>
public sealed class WranglerTomlTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("wrangler-toml-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public void The_deployed_toml_gives_UserAppContainer_its_max_instances()
    {
        // Where the AppHost reads it: worker/ beside the AppHost's folder.
        var path = Path.Combine(Projects.AppHost.ProjectPath, "..", "worker", "wrangler.toml");
        var line = File.ReadLines(path).Single(l => l.TrimStart().StartsWith("max_instances", StringComparison.Ordinal));
        Assert.Equal(int.Parse(line.Split('=')[1].Trim()), WranglerToml.MaxInstances(path, "UserAppContainer"));
    }

    [Fact]
    public void The_entry_of_the_class_is_the_one_read()
    {
        var path = Write("""
            [[containers]]
            class_name = "OtherContainer"
            image = "./Other.Dockerfile"
            max_instances = 3

            [[containers]]
            class_name = "UserAppContainer"
            image = "./Dockerfile"
            max_instances = 7
            """);

        Assert.Equal(7, WranglerToml.MaxInstances(path, "UserAppContainer"));
        Assert.Equal(3, WranglerToml.MaxInstances(path, "OtherContainer"));
    }

    [Theory]
    [InlineData("name = \"no-containers\"", "has no [[containers]] entry")]
    [InlineData("[[containers]]\nclass_name = \"OtherContainer\"\nmax_instances = 3", "has no [[containers]] entry")]
    [InlineData("[[containers]]\nclass_name = \"UserAppContainer\"", "no max_instances above 0")]
    [InlineData("[[containers]]\nclass_name = \"UserAppContainer\"\nmax_instances = 0", "no max_instances above 0")]
    public void A_toml_without_a_usable_max_instances_is_refused_with_the_reason(string toml, string reason)
    {
        var path = Write(toml);

        var error = Assert.Throws<InvalidOperationException>(() => WranglerToml.MaxInstances(path, "UserAppContainer"));
        Assert.Contains(reason, error.Message);
        Assert.Contains(path, error.Message);
    }

    private string Write(string toml)
    {
        var path = Path.Combine(_directory.FullName, "wrangler.toml");
        File.WriteAllText(path, toml);
        return path;
    }
}
