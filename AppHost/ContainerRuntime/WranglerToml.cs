using Tomlyn;
using Tomlyn.Model;

namespace Aspire.Hosting;

/// <summary>Reads the container settings the AppHost honours locally from worker/wrangler.toml, the file that deploys.</summary>
internal static class WranglerToml
{
    public static int MaxInstances(string path, string className)
    {
        var toml = TomlSerializer.Deserialize<TomlTable>(File.ReadAllText(path))!;
        var containers = toml.TryGetValue("containers", out var value) && value is TomlTableArray array ? array : new TomlTableArray();
        var entry = containers.FirstOrDefault(c => c.TryGetValue("class_name", out var name) && Equals(name, className))
            ?? throw new InvalidOperationException($"{path} has no [[containers]] entry with class_name = \"{className}\".");
        return entry.TryGetValue("max_instances", out var max) && max is long count && count > 0
            ? checked((int)count)
            : throw new InvalidOperationException($"{path}: the [[containers]] entry of {className} has no max_instances above 0.");
    }
}
