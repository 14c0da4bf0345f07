using System.Globalization;

namespace StepDpo.Tools.RealSize;

/// <summary>This process's peak resident memory: VmHWM of /proc/self/status (Linux), in GB (10⁹ bytes).</summary>
internal static class PeakMemory
{
    public static double PeakRssGb()
    {
        if (!OperatingSystem.IsLinux()) return double.NaN;
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024 / 1e9;
        return double.NaN;
    }
}
