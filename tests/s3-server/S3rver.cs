namespace LocalS3;

/// <summary>
/// s3rver, the local S3-compatible server that stands in for R2 (npm, in this folder): the one definition of how
/// it runs (its script, its arguments, its account) for the AppHost's resource <c>s3</c>, the unit tests' fixture
/// and the bench, which compile this file in. (scripts/checks.sh starts it the same way from bash.)
/// </summary>
internal static class S3rver
{
    /// <summary>s3rver's built-in account: the access key id and the secret are both this. Local only.</summary>
    public const string Account = "S3RVER";

    /// <summary>This folder, where <c>npm ci</c> installs s3rver.</summary>
    public static string Folder(string repositoryRoot) => Path.Combine(repositoryRoot, "tests", "s3-server");

    /// <summary>Its script, relative to <see cref="Folder"/>: run it with node from there.</summary>
    public const string Script = "node_modules/s3rver/bin/s3rver.js";

    /// <summary>Whether <c>npm ci</c> has installed it.</summary>
    public static bool IsInstalled(string repositoryRoot) => File.Exists(Path.Combine(Folder(repositoryRoot), Script));

    /// <summary>
    /// The arguments after the script: its data in <paramref name="dataDirectory"/>, on 127.0.0.1 (and
    /// <paramref name="port"/> when given), path-style bucket URLs as the service's client uses them, and
    /// <paramref name="bucket"/> made at start when given.
    /// </summary>
    public static List<string> Arguments(string dataDirectory, int? port = null, string? bucket = null)
    {
        List<string> arguments = ["--directory", dataDirectory, "--address", "127.0.0.1", "--no-vhost-buckets"];
        if (port is { } p) arguments.AddRange(["--port", p.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        if (bucket is not null) arguments.AddRange(["--configure-bucket", bucket]);
        return arguments;
    }
}
