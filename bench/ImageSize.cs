using System.Globalization;

namespace Bench;

/// <summary>
/// The image's size (issue 17), as podman counts it (uncompressed): the image scripts/container-check.sh builds
/// from the unchanged Dockerfile onto its stand-in of the chiseled base (the files of the original's slices). The
/// bench does not build it (that takes podman, root and minutes); it reads container-check's last build and says
/// which commit that was, or leaves the row out.
/// </summary>
static class ImageSize
{
    public const string Path = "upload-service image";
    public const string Case = "size (uncompressed)";
    const string Image = "localhost/container-check/upload-service:latest";

    public static void Measure(string repo, Report report)
    {
        var inspected = Versions.Run(repo, "podman", "image", "inspect", "--format",
            "{{.Size}}|{{.Created}}|{{index .Labels \"container-check.commit\"}}", Image);
        if (inspected?.Split('|') is not [var size, var created, var commit] || !long.TryParse(size, out var bytes))
        {
            report.Skip("image size", $"no {Image}: run scripts/container-check.sh first (as root, with podman)");
            return;
        }
        var built = commit is { Length: > 0 } and not "<no value>" ? $"from {commit}" : "from an unrecorded commit";
        report.Add(new Measurement("Image", Path, Case, 0, "MB", [bytes / 1e6],
            $"built by container-check {built} ({created.Split('.')[0]} UTC); the base stand-in's files are the chiseled-extra original's"));
    }

    /// <summary>The image before Native AOT: the framework-dependent service on mcr.microsoft.com/dotnet/aspnet.</summary>
    public const double BeforeMb = 283;

    public static string BeforeText => $"the image before Native AOT (aspnet base, {BeforeMb.ToString(CultureInfo.InvariantCulture)} MB)";
}
