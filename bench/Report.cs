using System.Globalization;
using System.Text;

namespace Bench;

public static class Stats
{
    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        var index = (int)Math.Ceiling(p / 100 * sorted.Length) - 1;
        return sorted[Math.Clamp(index, 0, sorted.Length - 1)];
    }

    public static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.#} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.#} MiB",
        _ => $"{bytes / 1024.0:0.#} KiB",
    };
}

/// <summary>One case on one path: its repeated values (after the warm-up) in <see cref="Unit"/>.</summary>
public sealed record Measurement(string Group, string Path, string Case, long Size, string Unit, double[] Values, string Extra = "")
{
    public double Median => Stats.Median(Values);
    public string Summary => Values.Length == 0
        ? "—"
        : $"{Median:0.##} {Unit} ({Values.Min():0.##}–{Values.Max():0.##}, n={Values.Length})";
}

public sealed record Ratio(string Target, string Numerator, string Denominator, double? Value, double Goal, bool HigherIsBetter, string Note)
{
    /// <summary>A ratio with no goal (NaN) is a diagnostic: it says where the time goes, it is not a target.</summary>
    public bool IsTarget => !double.IsNaN(Goal);
    public string GoalText => IsTarget ? $"{(HigherIsBetter ? "≥" : "≤")} {Goal:0.##}" : "(diagnostic)";
    public string Verdict => Value is not { } v ? "not measured" : !IsTarget ? "—" : (HigherIsBetter ? v >= Goal : v <= Goal) ? "met" : "missed";
}

public sealed class Report
{
    public List<Measurement> Measurements { get; } = [];
    public List<Ratio> Ratios { get; } = [];
    public List<string> Skipped { get; } = [];
    public List<string> Notes { get; } = [];
    public List<string> Facts { get; } = [];

    public void Add(Measurement m)
    {
        Measurements.Add(m);
        Console.WriteLine($"  {m.Group,-12} {m.Path,-36} {m.Case,-24} {m.Summary} {m.Extra}");
    }

    public void Skip(string what, string why)
    {
        Skipped.Add($"{what}: {why}");
        Console.WriteLine($"  skipped {what}: {why}");
    }

    public Measurement? Find(string path, string @case) =>
        Measurements.FirstOrDefault(m => m.Path == path && m.Case == @case);

    public void WriteMarkdown(string file, Machine machine, bool quick, TimeSpan wall)
    {
        var md = new StringBuilder();
        md.AppendLine("# Benchmark results");
        md.AppendLine();
        md.AppendLine($"`dotnet run -c Release --project bench{(quick ? " -- --quick" : "")}` on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {wall.TotalSeconds:0} s in all.");
        md.AppendLine();
        md.AppendLine("## Machine");
        md.AppendLine();
        foreach (var line in machine.Describe().Concat(Facts)) md.AppendLine($"- {line}");
        foreach (var note in Notes) md.AppendLine($"- **{note}**");
        md.AppendLine();
        md.AppendLine("## Targets (ratios from this run; diagnostics below them)");
        md.AppendLine();
        md.AppendLine("| target | measured | goal | verdict | pair |");
        md.AppendLine("| --- | --- | --- | --- | --- |");
        foreach (var r in Ratios)
            md.AppendLine($"| {r.Target} | {(r.Value is { } v ? v.ToString("0.00", CultureInfo.InvariantCulture) : "—")} | {r.GoalText} | {r.Verdict} | {r.Numerator} / {r.Denominator}{(r.Note.Length > 0 ? $"; {r.Note}" : "")} |");
        foreach (var group in Measurements.GroupBy(m => m.Group))
        {
            md.AppendLine();
            md.AppendLine($"## {group.Key}");
            md.AppendLine();
            md.AppendLine("| path | case | median | min–max | runs | notes |");
            md.AppendLine("| --- | --- | --- | --- | --- | --- |");
            foreach (var m in group)
                md.AppendLine($"| {m.Path} | {m.Case} | {m.Median:0.##} {m.Unit} | {m.Values.Min():0.##}–{m.Values.Max():0.##} | {m.Values.Length} | {m.Extra} |");
        }
        if (Skipped.Count > 0)
        {
            md.AppendLine();
            md.AppendLine("## Not measured in this run");
            md.AppendLine();
            foreach (var s in Skipped) md.AppendLine($"- {s}");
        }
        md.AppendLine();
        md.AppendLine("![throughput against file size](results.png)");
        File.WriteAllText(file, md.ToString());
    }

    /// <summary>Throughput against file size, one line per path (the "Uploads" and "Downloads" groups and the ceilings).</summary>
    public void WriteChart(string file, string title)
    {
        var plot = new ScottPlot.Plot();
        var series = Measurements.Where(m => m.Unit == "MiB/s" && m.Size > 0).GroupBy(m => m.Path).ToList();
        var sizes = series.SelectMany(s => s.Select(m => m.Size)).Distinct().Order().ToArray();
        plot.Add.Palette = new ScottPlot.Palettes.Category20();
        foreach (var path in series)
        {
            var points = path.OrderBy(m => m.Size).ToArray();
            var group = points[0].Group;
            var line = plot.Add.Scatter(points.Select(m => Math.Log2(m.Size)).ToArray(), points.Select(m => m.Median).ToArray());
            line.LineWidth = 2;
            line.MarkerSize = 7;
            // Ceilings dashed, downloads dotted, uploads solid.
            line.LinePattern = group == "Ceilings" ? ScottPlot.LinePattern.Dashed : group == "Downloads" ? ScottPlot.LinePattern.Dotted : ScottPlot.LinePattern.Solid;
            line.LegendText = $"{path.Key}{(group == "Ceilings" ? " (ceiling)" : group == "Downloads" ? " (download)" : "")}";
        }
        plot.Axes.Bottom.SetTicks(sizes.Select(s => Math.Log2(s)).ToArray(), sizes.Select(Stats.Size).ToArray());
        plot.Axes.Bottom.Label.Text = "file size";
        plot.Axes.Left.Label.Text = "MiB/s (median)";
        plot.Axes.SetLimitsY(0, series.Count == 0 ? 1 : series.SelectMany(s => s).Max(m => m.Median) * 1.1);
        plot.Title(title);
        plot.ShowLegend(ScottPlot.Edge.Right);
        plot.SavePng(file, 1200, 650);
    }
}

public sealed record Machine(int Cores, long MemoryBytes, string Cpu, string Os, string Runtime, string LoadAtStart)
{
    public string LoadAtEnd { get; set; } = "";

    public static Machine Read() => new(
        Environment.ProcessorCount,
        MemTotal(),
        CpuModel(),
        System.Runtime.InteropServices.RuntimeInformation.OSDescription,
        System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
        LoadAverage());

    public IEnumerable<string> Describe()
    {
        yield return $"{Cores} cores ({Cpu}), {MemoryBytes / (double)(1L << 30):0.#} GiB memory";
        yield return $"{Os}; {Runtime}";
        yield return $"load average (1, 5, 15 min) at start: {LoadAtStart}{(LoadAtEnd.Length > 0 ? $"; at end: {LoadAtEnd}" : "")}";
    }

    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    static long MemTotal()
    {
        if (!File.Exists("/proc/meminfo")) return 0;
        var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }

    static string CpuModel()
    {
        if (!File.Exists("/proc/cpuinfo")) return "unknown CPU";
        var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        return line?.Split(':', 2)[1].Trim() ?? "unknown CPU";
    }
}
