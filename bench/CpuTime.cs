using System.Globalization;

namespace Bench;

/// <summary>
/// CPU time from /proc, in seconds: the whole machine's (every core, busy and idle) and one process's. Taken
/// around a case, it says whether the cores were what limited it (busy near 100 %) and how many CPU-seconds a
/// GiB cost: in all (client, servers, kernel) and in the upload service alone. All zero where /proc is missing.
/// </summary>
public readonly record struct CpuTime(double Busy, double Idle, double Process)
{
    /// <summary>The unit of /proc/stat and /proc/&lt;pid&gt;/stat (USER_HZ), 100 on Linux.</summary>
    const double TicksPerSecond = 100;

    public double Total => Busy + Idle;

    public static CpuTime Read(int? pid)
    {
        try
        {
            // "cpu  user nice system idle iowait irq softirq steal …", all cores together.
            var machine = File.ReadLines("/proc/stat").First(l => l.StartsWith("cpu ", StringComparison.Ordinal))
                .Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8).Select(Ticks).ToArray();
            var idle = machine[3] + machine[4];
            return new CpuTime((machine.Sum() - idle) / TicksPerSecond, idle / TicksPerSecond, pid is { } p ? ProcessSeconds(p) : 0);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            return default;
        }
    }

    /// <summary>utime + stime, fields 14 and 15 of /proc/&lt;pid&gt;/stat (counted after the command name, which may hold spaces).</summary>
    static double ProcessSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (Ticks(fields[11]) + Ticks(fields[12])) / TicksPerSecond;
    }

    static double Ticks(string field) => double.Parse(field, CultureInfo.InvariantCulture);

    public static CpuTime operator -(CpuTime after, CpuTime before) =>
        new(after.Busy - before.Busy, after.Idle - before.Idle, after.Process - before.Process);

    public static CpuTime operator +(CpuTime a, CpuTime b) => new(a.Busy + b.Busy, a.Idle + b.Idle, a.Process + b.Process);
}
