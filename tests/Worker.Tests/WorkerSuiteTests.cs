namespace Worker.Tests;

public sealed class WorkerSuiteTests
{
    public static TheoryData<string> VitestTests => new(Vitest.Tests);

    [Theory]
    [MemberData(nameof(VitestTests))]
    public void Vitest_test_passes(string test)
    {
        Assert.True(Vitest.Results.TryGetValue(test, out var result),
            $"'{test}' was listed by `vitest list` but has no result in `vitest run` (results: {string.Join(", ", Vitest.Results.Keys)})");
        Assert.True(result.Status == "passed", $"{test}: {result.Status}\n{string.Join("\n", result.FailureMessages)}");
    }
}
