namespace StepDpo.TestHost;

/// <summary>Options as <c>--name value [value…]</c>: each name takes the values up to the next <c>--</c> name.</summary>
internal sealed class HostArguments
{
    private readonly Dictionary<string, List<string>> _values;

    private HostArguments(Dictionary<string, List<string>> values) => _values = values;

    public static HostArguments Parse(IEnumerable<string> args)
    {
        var values = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        List<string>? current = null;
        foreach (var a in args)
        {
            if (a.StartsWith("--", StringComparison.Ordinal))
            {
                current = new List<string>();
                if (!values.TryAdd(a, current)) throw new ArgumentException($"option {a} given twice");
            }
            else if (current is null) throw new ArgumentException($"'{a}' comes before any option");
            else current.Add(a);
        }
        return new HostArguments(values);
    }

    /// <summary>The single value of a required option.</summary>
    public string Required(string name) => Optional(name) ?? throw new ArgumentException($"{name} is required");

    /// <summary>The single value of an option, or null when it is absent.</summary>
    public string? Optional(string name) =>
        !_values.TryGetValue(name, out var v) ? null
        : v.Count == 1 ? v[0]
        : throw new ArgumentException($"{name} takes one value");

    /// <summary>An integer option, or <paramref name="fallback"/> when it is absent.</summary>
    public int Int(string name, int fallback) => Optional(name) is { } s ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : fallback;

    /// <summary>A number option, or <paramref name="fallback"/> when it is absent.</summary>
    public double Double(string name, double fallback) => Optional(name) is { } s ? double.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : fallback;

    /// <summary>All values of a required option that takes several.</summary>
    public IReadOnlyList<string> Many(string name) =>
        _values.TryGetValue(name, out var v) && v.Count > 0 ? v : throw new ArgumentException($"{name} needs at least one value");
}
