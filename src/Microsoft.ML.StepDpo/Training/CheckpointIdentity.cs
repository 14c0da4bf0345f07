namespace Microsoft.ML.StepDpo.Training;

/// <summary>Compares what a checkpoint was made from with what a run is made from, item by item.</summary>
internal static class CheckpointIdentity
{
    /// <summary>One "name: old → new" line per item that differs (missing on either side shown as "(none)").</summary>
    public static List<string> Differences(IReadOnlyDictionary<string, string> saved, IReadOnlyDictionary<string, string> current)
    {
        var lines = new List<string>();
        foreach (var name in current.Keys.Concat(saved.Keys.Where(k => !current.ContainsKey(k))))
        {
            string? was = saved.GetValueOrDefault(name), now = current.GetValueOrDefault(name);
            if (was != now) lines.Add($"{name}: {Show(was)} → {Show(now)}");
        }
        return lines;
    }

    // A SHA-256 is shown by its first 12 hex digits: enough to see that two differ.
    private static string Show(string? value) =>
        value is null ? "(none)" : value.Length == 64 && value.All(char.IsAsciiHexDigit) ? value[..12] + "…" : value;
}
