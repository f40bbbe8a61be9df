namespace Aspire.Hosting;

// Where the AppHost finds the repository and keeps local data.
public static class AppHostExtensions
{
    internal static string RepositoryRoot(this IDistributedApplicationBuilder builder) =>
        Path.GetFullPath(Path.Combine(builder.AppHostDirectory, ".."));

    /// <summary>
    /// A folder for data that outlives a run (uploaded files, Durable Object state), under `.data/` at the
    /// repository root (ignored by git) unless `LocalData:Root` points elsewhere.
    /// </summary>
    public static string LocalDataPath(this IDistributedApplicationBuilder builder, string name)
    {
        var path = Path.GetFullPath(Path.Combine(builder.LocalDataRoot(), name));
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>`.data/` at the repository root (ignored by git), unless `LocalData:Root` points elsewhere.</summary>
    public static string LocalDataRoot(this IDistributedApplicationBuilder builder) =>
        Path.GetFullPath(builder.Configuration["LocalData:Root"] ?? Path.Combine(builder.RepositoryRoot(), ".data"));
}

/// <summary>
/// A missing prerequisite or a bad switch, found while the AppHost builds its graph: the message says what to
/// do. Thrown rather than exiting, so that a test host that builds the AppHost sees it and lives on.
/// </summary>
public sealed class AppHostSetupException(string message) : Exception(message);
