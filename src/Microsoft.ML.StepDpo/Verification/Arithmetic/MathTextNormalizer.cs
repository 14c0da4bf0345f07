using System.Text;
using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Verification.Arithmetic;

/// <summary>
/// Rewrites LaTeX and Unicode math into the plain ASCII forms the tokenizer reads:
/// \frac{a}{b} → ((a)/(b)), \times and × → *, \div and ÷ → /, − – — → -, \text{kg} → " kg ", braces → parentheses,
/// Markdown bold and list bullets dropped.
/// </summary>
internal static class MathTextNormalizer
{
    private static readonly Regex s_fracCommand = new(@"\\[dt]?frac", RegexOptions.CultureInvariant);
    private static readonly Regex s_wrapperCommand = new(@"\\(?:boxed|text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{", RegexOptions.CultureInvariant);
    private static readonly Regex s_otherCommand = new(@"\\([A-Za-z]+)", RegexOptions.CultureInvariant);
    // A list bullet at the start of a line ("- 5 × 3 = 15", "* 2 + 2 = 4"), not a minus sign.
    private static readonly Regex s_bullet = new(@"(?m)^[ \t]*[-*•][ \t]+", RegexOptions.CultureInvariant);
    // "2**3" is a power; any other "**" is Markdown bold ("**Step 1:** 3 + 4 = 7").
    private static readonly Regex s_power = new(@"(?<=[\d)][ \t]*)\*\*(?=[ \t]*(?:[\d(]|\.\d))", RegexOptions.CultureInvariant);

    public static string Normalize(string text)
    {
        var s = text;
        s = s.Replace("\\left", string.Empty).Replace("\\right", string.Empty)
             .Replace("\\times", "*").Replace("\\cdot", "*").Replace("\\div", "/").Replace("\\approx", "≈")
             .Replace("\\$", "$").Replace("\\%", "%").Replace("{,}", ",").Replace("\\,", string.Empty).Replace("\\!", string.Empty)
             .Replace("\\;", " ").Replace("\\quad", " ").Replace("\\(", " ").Replace("\\)", " ").Replace("\\[", " ").Replace("\\]", " ");
        s = ReplaceFractions(s);
        s = UnwrapCommands(s);
        s = s_otherCommand.Replace(s, " $1 ");
        var sb = new StringBuilder(s.Length);
        foreach (char c in s)
        {
            switch (c)
            {
                case '×': case '✕': case '∙': case '·': case '⋅': sb.Append('*'); break;
                case '÷': sb.Append('/'); break;
                case '−': case '–': case '‒': case '—': case '‐': case '‑': sb.Append('-'); break;
                case '＝': sb.Append('='); break;
                case '²': sb.Append("^2"); break;
                case '³': sb.Append("^3"); break;
                case '{': case '[': sb.Append('('); break;
                case '}': case ']': sb.Append(')'); break;
                case '\u00a0': case '\u2009': case '\u202f': sb.Append(' '); break;
                default: sb.Append(c); break;
            }
        }

        s = s_bullet.Replace(sb.ToString(), string.Empty);
        return s_power.Replace(s, "^").Replace("**", " ");
    }

    // \frac{a}{b}, \frac12, \frac{a}2 → ((a)/(b)); nested fractions are handled from the inside out.
    private static string ReplaceFractions(string s)
    {
        for (int guard = 0; guard < 64; guard++)
        {
            var matches = s_fracCommand.Matches(s);
            if (matches.Count == 0)
                return s;
            // The last one cannot contain another \frac in its arguments' start.
            var m = matches[matches.Count - 1];
            int pos = m.Index + m.Length;
            if (!TryReadArgument(s, ref pos, out string num) || !TryReadArgument(s, ref pos, out string den))
                return s.Remove(m.Index, m.Length).Insert(m.Index, " frac ");
            s = s.Substring(0, m.Index) + "((" + num + ")/(" + den + "))" + s.Substring(pos);
        }

        return s;
    }

    private static bool TryReadArgument(string s, ref int pos, out string arg)
    {
        while (pos < s.Length && s[pos] == ' ')
            pos++;
        arg = string.Empty;
        if (pos >= s.Length)
            return false;
        if (s[pos] != '{')
        {
            if (!char.IsLetterOrDigit(s[pos]))
                return false;
            arg = s[pos].ToString();
            pos++;
            return true;
        }

        int depth = 0;
        for (int i = pos; i < s.Length; i++)
        {
            if (s[i] == '{')
                depth++;
            else if (s[i] == '}' && --depth == 0)
            {
                arg = s.Substring(pos + 1, i - pos - 1);
                pos = i + 1;
                return true;
            }
        }

        return false;
    }

    // \boxed{X}, \text{X} → " X " (brace-matched).
    private static string UnwrapCommands(string s)
    {
        for (int guard = 0; guard < 64; guard++)
        {
            var m = s_wrapperCommand.Match(s);
            if (!m.Success)
                return s;
            int open = m.Index + m.Length - 1, depth = 0, close = -1;
            for (int i = open; i < s.Length && close < 0; i++)
            {
                if (s[i] == '{')
                    depth++;
                else if (s[i] == '}' && --depth == 0)
                    close = i;
            }

            if (close < 0)
                return s.Remove(m.Index, m.Length).Insert(m.Index, " ");
            s = s.Substring(0, m.Index) + " " + s.Substring(open + 1, close - open - 1) + " " + s.Substring(close + 1);
        }

        return s;
    }
}
