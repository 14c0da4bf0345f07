namespace Microsoft.ML.StepDpo.Answers;

/// <summary>
/// The reference's number-word conversion (word2number's word_to_num applied to the whole answer): a pure
/// digit string is rewritten as an integer ("007" → "7"); otherwise the number words it contains are
/// combined ("twenty one" → "21"). Forms with "point", "million" or "billion" are left unchanged.
/// </summary>
internal static class WordNumbers
{
    private static readonly Dictionary<string, long> s_words = new(StringComparer.Ordinal)
    {
        ["zero"] = 0, ["one"] = 1, ["two"] = 2, ["three"] = 3, ["four"] = 4, ["five"] = 5, ["six"] = 6, ["seven"] = 7,
        ["eight"] = 8, ["nine"] = 9, ["ten"] = 10, ["eleven"] = 11, ["twelve"] = 12, ["thirteen"] = 13, ["fourteen"] = 14,
        ["fifteen"] = 15, ["sixteen"] = 16, ["seventeen"] = 17, ["eighteen"] = 18, ["nineteen"] = 19, ["twenty"] = 20,
        ["thirty"] = 30, ["forty"] = 40, ["fifty"] = 50, ["sixty"] = 60, ["seventy"] = 70, ["eighty"] = 80, ["ninety"] = 90,
        ["hundred"] = 100, ["thousand"] = 1000, ["million"] = 1_000_000, ["billion"] = 1_000_000_000, ["point"] = -1,
    };

    public static string Convert(string text)
    {
        string lowered = text.Replace('-', ' ').ToLowerInvariant();
        if (lowered.Length > 0 && lowered.All(char.IsAsciiDigit))
            return PyNumbers.TryParseInt(lowered, out var canonical) ? canonical : text;
        var clean = new List<string>();
        foreach (var w in lowered.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
            if (s_words.ContainsKey(w)) clean.Add(w);
        if (clean.Count == 0) return text;
        if (clean.Contains("point") || clean.Contains("million") || clean.Contains("billion")) return text;
        if (clean.Count(w => w == "thousand") > 1) return text;
        try
        {
            long total;
            if (clean.Count == 1) total = s_words[clean[0]];
            else
            {
                int th = clean.IndexOf("thousand");
                total = 0;
                if (th > -1)
                {
                    total += Formation(clean.GetRange(0, th)) * 1000;
                    if (th != clean.Count - 1) total += Formation(clean.GetRange(th + 1, clean.Count - th - 1));
                }
                else total = Formation(clean);
            }
            return total.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (ArgumentOutOfRangeException)
        {
            return text; // the reference raises here and keeps the text
        }
    }

    private static long Formation(List<string> words)
    {
        if (words.Count == 0) throw new ArgumentOutOfRangeException(nameof(words));
        var n = words.Select(w => s_words[w]).ToArray();
        return n.Length switch
        {
            4 => n[0] * n[1] + n[2] + n[3],
            3 => n[0] * n[1] + n[2],
            2 => n.Contains(100) ? n[0] * n[1] : n[0] + n[1],
            _ => n[0],
        };
    }
}
