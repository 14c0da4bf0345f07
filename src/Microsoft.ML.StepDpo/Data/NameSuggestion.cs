namespace Microsoft.ML.StepDpo.Data;

/// <summary>"Did you mean …?": the known name closest to a misspelled one, if one is close enough.</summary>
internal static class NameSuggestion
{
    /// <summary>
    /// The candidate closest to <paramref name="name"/> (case-insensitive edit distance, a swap of two neighbours counting
    /// as one edit), when at most a third of its characters (at least one) differ; null when none is that close.
    /// </summary>
    public static string? Closest(string name, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        int allowed = Math.Max(1, name.Length / 3);
        foreach (var c in candidates)
        {
            if (string.Equals(c, name, StringComparison.Ordinal)) continue;
            if (Math.Abs(c.Length - name.Length) > allowed) continue;
            int d = Distance(name.ToLowerInvariant(), c.ToLowerInvariant());
            if (d <= allowed && d < bestDistance)
            {
                best = c;
                bestDistance = d;
            }
        }
        return best;
    }

    // Optimal string alignment distance (Levenshtein plus adjacent transpositions).
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        }
        return d[a.Length, b.Length];
    }
}
