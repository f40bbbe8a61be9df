namespace Aspire.Hosting;

// Where the AppHost finds the repository and keeps local data, and how it stops on a missing prerequisite.
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

    /// <summary>A missing prerequisite or a bad switch is one readable line, not a stack trace.</summary>
    internal static void ExitWithError(string message)
    {
        Console.Error.WriteLine("error: " + message);
        Environment.Exit(1);
    }
}
