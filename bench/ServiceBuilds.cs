namespace Bench;

/// <summary>How to start one build of a server: the file to run, its arguments, and its folder (its content root).</summary>
public sealed record Executable(string Label, string FileName, string[] Args, string Directory)
{
    public Child Start(string name, IDictionary<string, string>? environment = null) =>
        Child.Start(name, FileName, Args, Directory, environment);
}

/// <summary>
/// The upload service's builds and the start-up floor: the Native AOT binary that the image ships (published here
/// the way the Dockerfile publishes it), the JIT build (the Release dll, as the AppHost runs it, for the side-by-side
/// rows), and the smallest Native AOT ASP.NET Core app (bench/floor). Without clang (or in --quick) there is no
/// native build: the service's cases run the JIT build and say so.
/// </summary>
public sealed record ServiceBuilds(Executable Jit, Executable? Native, Executable? Floor)
{
    /// <summary>The build the cases measure as "the service": the one the image ships where it could be published.</summary>
    public Executable Shipped => Native ?? Jit;

    public static async Task<ServiceBuilds> Prepare(string repo, string work, bool quick, Report report)
    {
#if DEBUG
        const string configuration = "Debug";
#else
        const string configuration = "Release";
#endif
        var bin = Path.Combine(repo, "UploadService", "bin", configuration, "net10.0");
        var dll = Path.Combine(bin, "UploadService.dll");
        if (!File.Exists(dll)) throw new FileNotFoundException($"build the upload service first ({dll} is missing)");
        var jit = new Executable($"JIT ({configuration} dll)", Stack.DotnetHost(), [dll], bin);

        if (quick)
        {
            report.Skip("Native AOT build (the service's cases run the JIT build)", "not in --quick");
            return new ServiceBuilds(jit, null, null);
        }
        if (Clang() is not { } clang)
        {
            report.Skip("Native AOT build (the service's cases run the JIT build)", "no clang (apt-get install clang zlib1g-dev)");
            return new ServiceBuilds(jit, null, null);
        }
        var native = await Publish(repo, "UploadService", Path.Combine(work, "native"), "UploadService", clang, report);
        var floor = await Publish(repo, Path.Combine("bench", "floor"), Path.Combine(work, "floor"), "Floor", clang, report);
        if (native is not null) report.Facts.Add("the service's cases run its Native AOT binary (the image's build); rows marked JIT run its Release dll");
        return new ServiceBuilds(jit, native, floor);
    }

    /// <summary>clang, or the newest clang-NN on the PATH (Debian installs it versioned).</summary>
    static string? Clang()
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries);
        if (path.Any(dir => File.Exists(Path.Combine(dir, "clang")))) return "clang";
        return path.Where(Directory.Exists)
            .SelectMany(dir => Directory.EnumerateFiles(dir, "clang-*"))
            .Select(Path.GetFileName)
            .Where(name => int.TryParse(name!["clang-".Length..], out _))
            .OrderByDescending(name => int.Parse(name!["clang-".Length..]))
            .FirstOrDefault();
    }

    static async Task<Executable?> Publish(string repo, string project, string output, string binary, string clang, Report report)
    {
        Console.WriteLine($"publishing {project} with Native AOT ({clang}) to {output}");
        await using var publish = Child.Start($"publish {project}", Stack.DotnetHost(),
            ["publish", project, "-c", "Release", "-r", "linux-x64", "-p:PublishAot=true", $"-p:CppCompilerAndLinker={clang}", "-o", output, "-nologo", "-v", "q"],
            repo);
        var code = await publish.WaitExit(TimeSpan.FromMinutes(10));
        if (code != 0)
        {
            report.Skip($"Native AOT build of {project}", $"dotnet publish exited with {code}: {publish.Tail()}");
            return null;
        }
        return new Executable("Native AOT", Path.Combine(output, binary), [], output);
    }
}
