using System.Globalization;

namespace Microsoft.ML.StepDpo.Answers;

/// <summary>
/// The reference's number-word conversion (word2number's <c>word_to_num</c> applied to the whole answer, the text kept
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

    private sealed class Malformed : Exception { }

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
        try
        {
            return WordToNum(text);
        }
        catch (Malformed)
        {
            return text;
        }
    }

    // Python int() of a string of Unicode decimal digits, printed back.
    private static string DigitsToInt(string text)
    {
        var sb = new System.Text.StringBuilder(text.Length);
        foreach (char c in text) sb.Append((char)('0' + (int)char.GetNumericValue(c)));
        string d = sb.ToString().TrimStart('0');
        return d.Length == 0 ? "0" : d;
    }

    private static string WordToNum(string text)
    {
        string lowered = text.Replace('-', ' ').ToLowerInvariant();
        var clean = new List<string>();
        foreach (var w in lowered.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
            if (s_words.ContainsKey(w)) clean.Add(w);
        if (clean.Count == 0) throw new Malformed();
        if (clean.Count(w => w == "thousand") > 1 || clean.Count(w => w == "million") > 1
            || clean.Count(w => w == "billion") > 1 || clean.Count(w => w == "point") > 1)
            throw new Malformed();
        List<string> decimals = new();
        int point = clean.IndexOf("point");
        if (point >= 0)
        {
            decimals = clean.GetRange(point + 1, clean.Count - point - 1);
            clean = clean.GetRange(0, point);
        }
        int bi = clean.IndexOf("billion"), mi = clean.IndexOf("million"), th = clean.IndexOf("thousand");
        if ((th > -1 && (th < mi || th < bi)) || (mi > -1 && mi < bi)) throw new Malformed();

        long total = 0;
        if (clean.Count == 1) total = s_words[clean[0]];
        else if (clean.Count > 1)
        {
            if (bi > -1) total += Formation(clean.GetRange(0, bi)) * 1_000_000_000;
            if (mi > -1)
                total += Formation(bi > -1 ? Slice(clean, bi + 1, mi) : Slice(clean, 0, mi)) * 1_000_000;
            if (th > -1)
            {
                var words = mi > -1 ? Slice(clean, mi + 1, th) : bi > -1 ? Slice(clean, bi + 1, th) : Slice(clean, 0, th);
                total += Formation(words) * 1000;
            }
            int last = clean.Count - 1;
            if (th > -1 && th != last) total += Formation(Slice(clean, th + 1, clean.Count));
            else if (mi > -1 && mi != last && th != last) total += Formation(Slice(clean, mi + 1, clean.Count));
            else if (bi > -1 && bi != last) total += Formation(Slice(clean, bi + 1, clean.Count));
            else if (th == -1 && mi == -1 && bi == -1) total += Formation(clean);
        }
        if (decimals.Count == 0) return total.ToString(CultureInfo.InvariantCulture);
        // Digit words after "point" make a float ("0.xy"); any other word makes the decimal part 0 (an int).
        if (!decimals.All(w => s_words[w] is >= 0 and <= 9 && w != "ten")) return total.ToString(CultureInfo.InvariantCulture);
        double value = total + double.Parse("0." + string.Concat(decimals.Select(w => s_words[w])), CultureInfo.InvariantCulture);
        return PyFloatRepr(value);
    }

    private static List<string> Slice(List<string> list, int from, int to) => to <= from ? new List<string>() : list.GetRange(from, to - from);

    private static long Formation(List<string> words)
    {
        if (words.Count == 0) throw new Malformed(); // Python: IndexError
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
