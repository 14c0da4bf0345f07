using System.Text;
using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Answers;

/// <summary>
/// Normalizes an answer string the way the Qwen2.5-Math evaluation does (MATH's <c>strip_string</c> and its
/// extensions), step for step and in the same order, so that equivalence verdicts agree with that grader:
/// line breaks, trailing ".", <c>\!</c>, array/bmatrix → pmatrix, <c>\tfrac</c>/<c>\dfrac</c> → <c>\frac</c>,
/// <c>\left</c>/<c>\right</c>, a trailing <c>\text{unit}</c>, unit words, degrees, <c>$</c>, number words,
/// <c>\text{…}</c>, <c>x=</c>, percent, leading zeros of decimals, infinity, trailing <c>.0</c>,
/// short "k = " prefixes, <c>\sqrt3</c>, spaces, <c>\frac12</c>, and <c>a/b</c> → <c>\frac{a}{b}</c>.
/// Pure and thread-safe; time is linear in the input length times the (fixed) number of unit words.
/// </summary>
public static class AnswerNormalizer
{
    // Linear-time regex engine and no match timeout: a timeout measures wall time, so under machine load it would
    // silently change the normalized answer (and the grade). These patterns need no backtracking features.
    private const RegexOptions Linear = RegexOptions.CultureInvariant | RegexOptions.NonBacktracking;
    private static readonly Regex s_arrayBegin = new(@"\\begin\{array\}\{.*?\}", Linear);
    private static readonly Regex s_textUnwrap = new(@"\\text\{(.*?)\}", Linear);
    private static readonly Regex s_mbox = new(@"\\mbox\{.*?\}", Linear);
    private static readonly Regex s_trailingZerosInner = new(@"(\d+)\.0*([^\d])", Linear);
    private static readonly Regex s_trailingZerosEnd = new(@"(\d+)\.0*$", Linear);
    private static readonly Regex s_sqrt = new(@"\\sqrt(\w+)", Linear);

    private static readonly string[] s_variablePrefixes = { "x=", "y=", "z=", "x\\in", "y\\in", "z\\in", "x\\to", "y\\to", "z\\to" };

    // Unit words from MathQA, as the graders' strip_string lists them (plus each with an "s"). A "." in them matches any character.
    private static readonly string[] s_unitTexts = BuildUnits();

    private static string[] BuildUnits()
    {
        string[] baseUnits =
        {
            "east", "degree", "mph", "kmph", "ft", "m sqaure", " m east", "sq m", "deg", "mile", "q .", "monkey", "prime",
            "ratio", "profit of rs", "rd", "o", "gm", "p . m", "lb", "tile", "per", "dm", "lt", "gain", "ab", "way", "west",
            "a .", "b .", "c .", "d .", "e .", "f .", "g .", "h .", "t", "a", "h", "no change", "men", "soldier", "pie", "bc",
            "excess", "st", "inches", "noon", "percent", "by", "gal", "kmh", "c", "acre", "rise", "a . m", "th", "π r 2", "sq",
            "mark", "l", "toy", "coin", "sq . m", "gallon", "° f", "profit", "minw", "yr", "women", "feet", "am", "pm", "hr",
            "cu cm", "square", "v â € ™", "are", "rupee", "rounds", "cubic", "cc", "mtr", "s", "ohm", "number", "kmph", "day",
            "hour", "minute", "min", "second", "man", "woman", "sec", "cube", "mt", "sq inch", "mp", "∏ cm ³", "hectare",
            "more", "sec", "unit", "cu . m", "cm 2", "rs .", "rs", "kg", "g", "month", "km", "m", "cm", "mm", "apple", "liter",
            "loss", "yard", "pure", "year", "increase", "decrease", "d", "less", "Surface", "litre", "pi sq m", "s .", "metre",
            "meter", "inch",
        };
        return baseUnits.Concat(baseUnits.Select(u => u + "s")).ToArray();
    }

    /// <summary>Normalizes <paramref name="answer"/> (null gives an empty string).</summary>
    /// <param name="answer">The answer text, e.g. the content of a \boxed{}.</param>
    /// <param name="skipUnits">Do not remove unit words (the graders skip them for some datasets).</param>
    public static string Normalize(string? answer, bool skipUnits = false) => Normalize(answer, skipUnits, plainUnits: false);

    /// <summary>Normalization with the unit removal chosen: <paramref name="plainUnits"/> tries every unit in turn (the graders' path, kept for tests and benchmarks).</summary>
    internal static string Normalize(string? answer, bool skipUnits, bool plainUnits)
    {
        return answer is null ? string.Empty : NormalizeCore(answer, skipUnits, plainUnits);
    }

    private static string NormalizeCore(string s, bool skipUnits, bool plainUnits)
    {
        s = PyStrip(s);
        s = s.Replace("\n", "");
        s = s.TrimEnd('.');
        s = s.Replace("\\!", "");
        if (s.Contains("\\begin{array}", StringComparison.Ordinal)) s = s_arrayBegin.Replace(s, "\\begin{pmatrix}");
        s = s.Replace("\\end{array}", "\\end{pmatrix}");
        s = s.Replace("bmatrix", "pmatrix");
        s = s.Replace("tfrac", "frac").Replace("dfrac", "frac");
        s = s.Replace("\\neq", "\\ne").Replace("\\leq", "\\le").Replace("\\geq", "\\ge");
        s = s.Replace("\\left", "").Replace("\\right", "");
        s = s.Replace("\\{", "{").Replace("\\}", "}");

        // A trailing unit in \text{...}: everything from the first \text{ is dropped when the string ends with "}".
        int text = s.IndexOf("\\text{", StringComparison.Ordinal);
        if (text >= 0 && s.EndsWith('}') && s.Length - 1 >= text + 6)
        {
            string cut = PyStrip(s[..text]);
            if (cut.Length > 0 && cut != s) s = cut;
        }

        if (!skipUnits) s = plainUnits ? RemoveUnitsPlain(s) : RemoveUnits(s);

        s = s.Replace("^{\\circ}", "").Replace("^\\circ", "");
        s = s.Replace("\\$", "").Replace("$", "");
        s = s.Replace("\\(", "").Replace("\\)", "");
        s = WordNumbers.Convert(s);
        if (s.Contains("\\text{", StringComparison.Ordinal)) s = s_textUnwrap.Replace(s, "$1");
        foreach (var key in s_variablePrefixes)
            s = s.Replace(key, "");
        s = s.Replace("\\emptyset", "{}");
        s = s.Replace("(-\\infty,\\infty)", "\\mathbb{R}");
        s = s.Replace("\\%", "").Replace("%", "");
        s = s.Replace(" .", " 0.").Replace("{.", "{0.");
        s = s.Replace("infinity", "\\infty");
        if (!s.Contains("\\infty", StringComparison.Ordinal))
            s = s.Replace("inf", "\\infty");
        s = s.Replace("+\\inity", "\\infty");
        s = s.Replace("and", "");
        s = s.Replace("\\mathbf", "");
        if (s.Contains("\\mbox{", StringComparison.Ordinal)) s = s_mbox.Replace(s, "");
        if (s.Contains('j') && !s.Contains('i'))
            s = s.Replace('j', 'i');
        if (s.Contains('.'))
        {
            s = s_trailingZerosInner.Replace(s, "$1$2");
            s = s_trailingZerosEnd.Replace(s, "$1");
        }
        if (s.Length == 0) return s;
        if (s[0] == '.') s = "0" + s;
        int eq = s.IndexOf('=');
        if (eq >= 0 && s.IndexOf('=', eq + 1) < 0 && eq <= 2)
            s = s[(eq + 1)..];
        if (s.Contains("\\sqrt", StringComparison.Ordinal)) s = s_sqrt.Replace(s, "\\sqrt{$1}");
        s = s.Replace(" ", "");
        s = FixFracs(s);
        s = FixSlash(s);
        return s;
    }

    /// <summary>Python's str.strip(): removes leading and trailing whitespace.</summary>
    internal static string PyStrip(string s) => s.Trim();

    /// <summary>Python's <c>\w</c> on str: letters, all numeric characters (digits, ², ½, …) and "_".</summary>
    internal static bool IsWord(char c) => char.IsLetter(c) || char.IsNumber(c) || c == '_';

    /// <summary>
    /// The graders' unit loop (every unit, in order, two passes; a removal that would leave nothing is not made),
    /// trying only the units that can match. A unit that starts with a word character W… (its leading run of word
    /// characters) needs W to stand as a whole word in the string: the match starts at the string start or after a
    /// non-word character, and W is followed by the unit's space or by the end of the match (end or non-word). The
    /// candidates are recomputed after each removal, so the result is exactly the plain loop's.
    /// </summary>
    internal static string RemoveUnits(string s)
    {
        Span<ulong> candidates = stackalloc ulong[(s_unitTexts.Length + 63) / 64];
        MarkCandidates(s, candidates);
        for (int pass = 0; pass < 2; pass++)
        {
            var units = s_unitTexts;
            for (int u = 0; u < units.Length; u++)
            {
                if ((candidates[u >> 6] & (1UL << (u & 63))) == 0) continue;
                string removed = RemoveUnit(s, units[u]);
                if (ReferenceEquals(removed, s) || removed.Length == 0) continue;
                s = removed;
                MarkCandidates(s, candidates);
            }
        }
        return s;
    }

    // Units whose first character is not a word character: always tried (RemoveUnit first checks the text occurs).
    private static readonly ulong[] s_alwaysTried = BuildAlwaysTried();

    // Unit indices by the leading word of the unit ("sq" for "sq m", "sq", "sq . m", "sqs", …).
    private static readonly Dictionary<string, int[]> s_unitsByLeadingWord = s_unitTexts
        .Select((u, i) => (Word: LeadingWord(u), Index: i))
        .Where(e => e.Word.Length > 0)
        .GroupBy(e => e.Word, StringComparer.Ordinal)
        .ToDictionary(g => g.Key, g => g.Select(e => e.Index).ToArray(), StringComparer.Ordinal);

    private static readonly int s_longestLeadingWord = s_unitsByLeadingWord.Keys.Max(k => k.Length);

    private static string LeadingWord(string unit)
    {
        int n = 0;
        while (n < unit.Length && IsWord(unit[n])) n++;
        return unit[..n];
    }

    private static ulong[] BuildAlwaysTried()
    {
        var bits = new ulong[(s_unitTexts.Length + 63) / 64];
        for (int u = 0; u < s_unitTexts.Length; u++)
            if (!IsWord(s_unitTexts[u][0])) bits[u >> 6] |= 1UL << (u & 63);
        return bits;
    }

    private static void MarkCandidates(string s, Span<ulong> candidates)
    {
        s_alwaysTried.CopyTo(candidates);
        int i = 0;
        while (i < s.Length)
        {
            if (!IsWord(s[i])) { i++; continue; }
            int start = i;
            while (i < s.Length && IsWord(s[i])) i++;
            if (i - start <= s_longestLeadingWord && s_unitsByLeadingWord.TryGetValue(s.Substring(start, i - start), out var units))
                foreach (int u in units) candidates[u >> 6] |= 1UL << (u & 63);
        }
    }

    /// <summary>The graders' unit loop without any filter: every unit is tried in turn, two passes.</summary>
    internal static string RemoveUnitsPlain(string s)
    {
        for (int pass = 0; pass < 2; pass++)
            foreach (var unit in s_unitTexts)
            {
                string removed = RemoveUnit(s, unit);
                if (removed.Length > 0) s = removed;
            }
        return s;
    }


    /// <summary>
    /// Removes <paramref name="unit"/> where it stands as a word: the graders' <c>re.sub(r"(^|\W)unit($|\W)", r"\1\2", s)</c>,
    /// including how its matches consume the boundary characters and its "." wildcard.
    /// </summary>
    internal static string RemoveUnit(string s, string unit)
    {
        int firstDot = unit.IndexOf('.');
        string head = firstDot < 0 ? unit : unit[..firstDot];
        if (head.Length > 0 && !s.Contains(head, StringComparison.Ordinal)) return s;
        StringBuilder? sb = null;
        int copied = 0, p = 0;
        int search = 0;
        while (search < s.Length)
        {
            // Jump to the next place the unit can start; the match then begins there (^) or one before (\W).
            int q = head.Length == 0 ? search : s.IndexOf(head, search, StringComparison.Ordinal);
            if (q < 0) break;
            search = q + 1;
            int unitStart, end;
            if (q == 0) { if (p != 0 || !TryMatchAt(s, 0, unit, out unitStart, out end) || unitStart != 0) continue; }
            else if (q - 1 < p || !TryMatchAt(s, q - 1, unit, out unitStart, out end) || unitStart != q) continue;
            sb ??= new StringBuilder(s.Length);
            sb.Append(s, copied, unitStart - copied);
            copied = unitStart + unit.Length;
            p = end;
            search = Math.Max(search, end);
        }
        if (sb is null) return s;
        sb.Append(s, copied, s.Length - copied);
        return sb.ToString();
    }

    // One attempt of the pattern at position p, alternatives in the graders' order: "^" then "\W" before the unit.
    private static bool TryMatchAt(string s, int p, string unit, out int unitStart, out int end)
    {
        for (int alt = 0; alt < 2; alt++)
        {
            if (alt == 0) { if (p != 0) continue; unitStart = 0; }
            else { if (p >= s.Length || IsWord(s[p])) continue; unitStart = p + 1; }
            if (!UnitAt(s, unitStart, unit)) continue;
            int after = unitStart + unit.Length;
            if (after == s.Length) { end = after; return true; }
            if (!IsWord(s[after])) { end = after + 1; return true; }
        }
        unitStart = end = 0;
        return false;
    }

    private static bool UnitAt(string s, int i, string unit)
    {
        if (i + unit.Length > s.Length) return false;
        for (int k = 0; k < unit.Length; k++)
        {
            char c = unit[k];
            if (c == '.') { if (s[i + k] == '\n') return false; }
            else if (s[i + k] != c) return false;
        }
        return true;
    }

    /// <summary><c>\frac12</c> → <c>\frac{1}{2}</c>, <c>\frac1{72}</c> → <c>\frac{1}{72}</c> (the graders' _fix_fracs).</summary>
    internal static string FixFracs(string s)
    {
        var parts = s.Split("\\frac");
        if (parts.Length == 1) return s;
        var sb = new StringBuilder(parts[0]);
        for (int i = 1; i < parts.Length; i++)
        {
            string sub = parts[i];
            sb.Append("\\frac");
            if (sub.Length > 0 && sub[0] == '{') { sb.Append(sub); continue; }
            if (sub.Length < 2) return s;
            char a = sub[0], b = sub[1];
            if (b != '{') sb.Append('{').Append(a).Append("}{").Append(b).Append('}').Append(sub, 2, sub.Length - 2);
            else sb.Append('{').Append(a).Append('}').Append(b).Append(sub, 2, sub.Length - 2);
        }
        return sb.ToString();
    }

    /// <summary><c>3/4</c> → <c>\frac{3}{4}</c> when both sides are plain integers (or contain sqrt), as the graders' _fix_a_slash_b.</summary>
    internal static string FixSlash(string s)
    {
        int slash = s.IndexOf('/');
        if (slash < 0 || s.IndexOf('/', slash + 1) >= 0) return s;
        string a = s[..slash], b = s[(slash + 1)..];
        if (!a.Contains("sqrt", StringComparison.Ordinal)) { if (!PyNumbers.TryParseInt(a, out var ai)) return s; a = ai; }
        if (!b.Contains("sqrt", StringComparison.Ordinal)) { if (!PyNumbers.TryParseInt(b, out var bi)) return s; b = bi; }
        if (a + "/" + b != s) return s;
        return "\\frac{" + a + "}{" + b + "}";
    }
}
