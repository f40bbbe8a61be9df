using System.Text.Json;

namespace Worker.Tests;

/// <summary>
/// Runs the worker's vitest suite (inside workerd, through @cloudflare/vitest-pool-workers) from `dotnet test`,
/// so one command runs every test of the repository and each vitest test counts as one test here.
/// </summary>
public static class Vitest
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);

    private static readonly Lazy<IReadOnlyList<string>> ListedTests = new(ListTests);
    private static readonly Lazy<Dictionary<string, TestResult>> RunResults = new(RunAll);

    public sealed record TestResult(string Status, string[] FailureMessages);

    /// <summary>Every vitest test as "file › suite › name", discovered with `vitest list`.</summary>
    public static IReadOnlyList<string> Tests => ListedTests.Value;

    /// <summary>Results of one `vitest run` of the whole suite, keyed like <see cref="Tests"/>.</summary>
    public static IReadOnlyDictionary<string, TestResult> Results => RunResults.Value;

    private static IReadOnlyList<string> ListTests() => WithOutputFile("list", output =>
    {
        Npm.Run(Timeout, "exec", "--", "vitest", "list", $"--json={output}").ThrowIfFailed();
        using var document = JsonDocument.Parse(File.ReadAllText(output));
        return (IReadOnlyList<string>)document.RootElement.EnumerateArray()
            .Select(t => Key(t.GetProperty("file").GetString()!, t.GetProperty("name").GetString()!.Split(" > ")))
            .ToList();
    });

    private static Dictionary<string, TestResult> RunAll() => WithOutputFile("run", output =>
    {
        // A failing suite exits non-zero; the per-test results say which test failed and why.
        var run = Npm.Run(Timeout, "exec", "--", "vitest", "run", "--reporter=json", $"--outputFile={output}");
        if (!File.Exists(output)) run.ThrowIfFailed();

        using var document = JsonDocument.Parse(File.ReadAllText(output));
        var results = new Dictionary<string, TestResult>();
        foreach (var file in document.RootElement.GetProperty("testResults").EnumerateArray())
        {
            var fileName = file.GetProperty("name").GetString()!;
            foreach (var test in file.GetProperty("assertionResults").EnumerateArray())
            {
                var titles = test.GetProperty("ancestorTitles").EnumerateArray().Select(a => a.GetString()!)
                    .Append(test.GetProperty("title").GetString()!);
                results[Key(fileName, titles)] = new TestResult(
                    test.GetProperty("status").GetString()!,
                    test.GetProperty("failureMessages").EnumerateArray().Select(m => m.GetString() ?? "").ToArray());
            }
        }
        return results;
    });

    private static T WithOutputFile<T>(string verb, Func<string, T> use)
    {
        Npm.EnsureInstalled();
        var output = Path.Combine(Path.GetTempPath(), $"vitest-{verb}-{Guid.NewGuid():N}.json");
        try
        {
            return use(output);
        }
        finally
        {
            File.Delete(output);
        }
    }

    private static string Key(string file, IEnumerable<string> titles) =>
        string.Join(" › ", titles.Prepend(Path.GetRelativePath(Npm.WorkerDirectory, Path.GetFullPath(file, Npm.WorkerDirectory))));
}
