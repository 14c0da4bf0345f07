using System.Globalization;

namespace Microsoft.ML.StepDpo.Answers;

/// <summary>
/// The answer graders' number-word conversion (word2number's <c>word_to_num</c> applied to the whole answer, the text kept
/// when it raises): a string of decimal digits is rewritten as an integer ("007" → "7"); otherwise the number words it
/// contains are combined, whatever else stands around them ("twenty one" → "21", "2 million" → "1000000", "one point
/// five" → "1.5"). Strings without an ASCII letter that are not all digits are returned unchanged at once.
/// </summary>
internal static class WordNumbers
{
    private const long Point = -1;

    private static readonly Dictionary<string, long> s_words = new(StringComparer.Ordinal)
    {
        ["zero"] = 0, ["one"] = 1, ["two"] = 2, ["three"] = 3, ["four"] = 4, ["five"] = 5, ["six"] = 6, ["seven"] = 7,
        ["eight"] = 8, ["nine"] = 9, ["ten"] = 10, ["eleven"] = 11, ["twelve"] = 12, ["thirteen"] = 13, ["fourteen"] = 14,
        ["fifteen"] = 15, ["sixteen"] = 16, ["seventeen"] = 17, ["eighteen"] = 18, ["nineteen"] = 19, ["twenty"] = 20,
        ["thirty"] = 30, ["forty"] = 40, ["fifty"] = 50, ["sixty"] = 60, ["seventy"] = 70, ["eighty"] = 80, ["ninety"] = 90,
        ["hundred"] = 100, ["thousand"] = 1000, ["million"] = 1_000_000, ["billion"] = 1_000_000_000, ["point"] = Point,
    };

    public static string Convert(string text)
    {
        if (text.Length == 0) return text;
        bool allDigits = true, anyLetter = false;
        foreach (char c in text)
        {
            if (!char.IsDigit(c)) allDigits = false;
            if (c is >= 'a' and <= 'z' or >= 'A' and <= 'Z') anyLetter = true;
        }
        if (allDigits) return DigitsToInt(text);
        if (!anyLetter) return text; // no number word can occur
        return WordToNum(text) ?? text;
    }

    // Python int() of a string of Unicode decimal digits, printed back.
    private static string DigitsToInt(string text)
    {
        var sb = new System.Text.StringBuilder(text.Length);
        foreach (char c in text) sb.Append((char)('0' + (int)char.GetNumericValue(c)));
        string d = sb.ToString().TrimStart('0');
        return d.Length == 0 ? "0" : d;
    }

    // word_to_num, null where it raises.
    private static string? WordToNum(string text)
    {
        string lowered = text.Replace('-', ' ').ToLowerInvariant();
        var clean = new List<string>();
        foreach (var w in lowered.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
            if (s_words.ContainsKey(w)) clean.Add(w);
        if (clean.Count == 0) return null;
        if (clean.Count(w => w == "thousand") > 1 || clean.Count(w => w == "million") > 1
            || clean.Count(w => w == "billion") > 1 || clean.Count(w => w == "point") > 1)
            return null;
        List<string> decimals = new();
        int point = clean.IndexOf("point");
        if (point >= 0)
        {
            decimals = clean.GetRange(point + 1, clean.Count - point - 1);
            clean = clean.GetRange(0, point);
        }
        int bi = clean.IndexOf("billion"), mi = clean.IndexOf("million"), th = clean.IndexOf("thousand");
        if ((th > -1 && (th < mi || th < bi)) || (mi > -1 && mi < bi)) return null;

        long total = 0;
        if (clean.Count == 1) total = s_words[clean[0]];
        else if (clean.Count > 1)
        {
            long? part;
            if (bi > -1)
            {
                if ((part = Formation(clean.GetRange(0, bi))) is null) return null;
                total += part.Value * 1_000_000_000;
            }
            if (mi > -1)
            {
                if ((part = Formation(bi > -1 ? Slice(clean, bi + 1, mi) : Slice(clean, 0, mi))) is null) return null;
                total += part.Value * 1_000_000;
            }
            if (th > -1)
            {
                var words = mi > -1 ? Slice(clean, mi + 1, th) : bi > -1 ? Slice(clean, bi + 1, th) : Slice(clean, 0, th);
                if ((part = Formation(words)) is null) return null;
                total += part.Value * 1000;
            }
            int last = clean.Count - 1;
            part = 0;
            if (th > -1 && th != last) part = Formation(Slice(clean, th + 1, clean.Count));
            else if (mi > -1 && mi != last && th != last) part = Formation(Slice(clean, mi + 1, clean.Count));
            else if (bi > -1 && bi != last) part = Formation(Slice(clean, bi + 1, clean.Count));
            else if (th == -1 && mi == -1 && bi == -1) part = Formation(clean);
            if (part is null) return null;
            total += part.Value;
        }
        if (decimals.Count == 0) return total.ToString(CultureInfo.InvariantCulture);
        // Digit words after "point" make a float ("0.xy"); any other word makes the decimal part 0 (an int).
        if (!decimals.All(w => s_words[w] is >= 0 and <= 9 && w != "ten")) return total.ToString(CultureInfo.InvariantCulture);
        double value = total + double.Parse("0." + string.Concat(decimals.Select(w => s_words[w])), CultureInfo.InvariantCulture);
        return PyFloatRepr(value);
    }

    private static List<string> Slice(List<string> list, int from, int to) => to <= from ? new List<string>() : list.GetRange(from, to - from);

    // number_formation; null where Python raises IndexError (no words).
    private static long? Formation(List<string> words)
    {
        if (words.Count == 0) return null;
        var n = words.Select(w => s_words[w]).ToArray();
        return n.Length switch
        {
            4 => n[0] * n[1] + n[2] + n[3],
            3 => n[0] * n[1] + n[2],
            2 => n.Contains(100) ? n[0] * n[1] : n[0] + n[1],
            _ => n[0],
        };
    }

    /// <summary>Python's str(float) for the values number words produce (always with a decimal point).</summary>
    internal static string PyFloatRepr(double v)
    {
        string r = v.ToString("R", CultureInfo.InvariantCulture);
        if (r.Contains('E')) return r;
        return r.Contains('.') ? r : r + ".0";
    }
}
