using System.Globalization;
using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Verification.Arithmetic;

/// <summary>
/// Splits normalized step text into numbers, operators, parentheses, equals signs, words and punctuation,
/// then resolves the words that are arithmetic ("5 x 4", "20% of 50") and drops unit words between a
/// number and an operator ("2 hours * 60", "$12/hour * 8").
/// </summary>
internal static class MathTokenizer
{
    // Thousands groups only in threes ("80,000"); "1, 2" and "2,5" are not numbers with commas.
    private static readonly Regex s_number = new(@"\G(?:\d{1,3}(?:,\d{3})+(?![\d,]\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)", RegexOptions.CultureInvariant);
    private static readonly Regex s_word = new(@"\G[A-Za-z]+", RegexOptions.CultureInvariant);

    /// <summary>
    /// Words that carry an operation on what follows ("half of 10", "twice 4", "3 dozen"): an expression
    /// right after one of them is not the whole calculation.
    /// </summary>
    internal static readonly HashSet<string> OperationWords = new(StringComparer.OrdinalIgnoreCase)
    {
        "times", "time", "half", "halves", "twice", "double", "doubled", "triple", "tripled", "thrice", "quadruple",
        "quarter", "quarters", "third", "thirds", "fourth", "fourths", "fifth", "fifths", "sixth", "tenth", "tenths",
        "dozen", "dozens", "score", "hundred", "hundreds", "thousand", "thousands", "million", "millions", "billion", "billions",
        "percent", "pct", "minus", "plus", "squared", "cubed", "sqrt", "root", "frac", "mod", "remainder", "x", "X",
    };

    /// <summary>
    /// Words that join a number before them to the expression after them ("12 divided by 3 + 1", "5 more than
    /// 3 * 2", "3 packs of 5 * 2"); harmless without such a number ("a total of 12 + 24").
    /// </summary>
    internal static readonly HashSet<string> ConnectingWords = new(StringComparer.OrdinalIgnoreCase)
    {
        "of", "by", "than", "from", "over", "per", "each", "every", "and", "more", "less", "fewer", "divided", "multiplied", "off", "into",
    };

    public static List<MathToken> Tokenize(string normalized)
    {
        var tokens = new List<MathToken>();
        bool space = true;
        int i = 0;
        while (i < normalized.Length)
        {
            char c = normalized[i];
            if (char.IsWhiteSpace(c))
            {
                space = true;
                i++;
                continue;
            }

            // Currency signs and LaTeX math delimiters carry no value.
            if (c is '$' or '€' or '£')
            {
                i++;
                continue;
            }

            MathToken token;
            Match m;
            if ((char.IsDigit(c) || (c == '.' && i + 1 < normalized.Length && char.IsDigit(normalized[i + 1]))) && (m = s_number.Match(normalized, i)).Success)
            {
                string raw = m.Value;
                int dot = raw.IndexOf('.');
                bool percent = m.Index + m.Length < normalized.Length && normalized[m.Index + m.Length] == '%';
                token = new MathToken
                {
                    Kind = MathTokenKind.Number,
                    Text = raw + (percent ? "%" : string.Empty),
                    Value = double.Parse(raw.Replace(",", string.Empty), NumberStyles.Float, CultureInfo.InvariantCulture),
                    Decimals = dot < 0 ? 0 : raw.Length - dot - 1,
                    Percent = percent,
                };
                i += m.Length + (percent ? 1 : 0);
            }
            else if ((m = s_word.Match(normalized, i)).Success)
            {
                token = new MathToken { Kind = MathTokenKind.Word, Text = m.Value };
                i += m.Length;
            }
            else
            {
                token = c switch
                {
                    '+' or '-' or '*' or '/' or '^' => new MathToken { Kind = MathTokenKind.Operator, Text = c.ToString() },
                    '(' => new MathToken { Kind = MathTokenKind.LeftParen, Text = "(" },
                    ')' => new MathToken { Kind = MathTokenKind.RightParen, Text = ")" },
                    '=' => new MathToken { Kind = MathTokenKind.Equals, Text = "=" },
                    '≈' => new MathToken { Kind = MathTokenKind.Equals, Text = "≈", Approximate = true },
                    '~' => new MathToken { Kind = MathTokenKind.Equals, Text = "~", Approximate = true },
                    _ => new MathToken { Kind = MathTokenKind.Punct, Text = c.ToString() },
                };
                i++;
                // "==" is one equals sign.
                if (token.Text == "=" && i < normalized.Length && normalized[i] == '=')
                    i++;
            }

            token.SpaceBefore = space;
            space = false;
            tokens.Add(token);
        }

        ResolveWords(tokens);
        return tokens;
    }

    private static void ResolveWords(List<MathToken> t)
    {
        for (int i = 0; i < t.Count; i++)
        {
            var tok = t[i];
            // "80 percent" is "80%".
            if (tok is { Kind: MathTokenKind.Number, Percent: false } && i + 1 < t.Count && t[i + 1].Kind == MathTokenKind.Word
                && t[i + 1].Text.ToLowerInvariant() is "percent" or "pct" or "percents")
            {
                t[i] = new MathToken { Kind = MathTokenKind.Number, Text = tok.Text + "%", Value = tok.Value, Decimals = tok.Decimals, Percent = true, SpaceBefore = tok.SpaceBefore };
                t.RemoveAt(i + 1);
                tok = t[i];
            }

            // "~5": an approximate number, not an equals sign.
            if (tok is { Kind: MathTokenKind.Equals, Text: "~" } && (i == 0 || !t[i - 1].IsValue))
            {
                t.RemoveAt(i--);
                continue;
            }

            if (tok.Kind != MathTokenKind.Word)
                continue;
            var prev = i > 0 ? t[i - 1] : null;
            var next = i + 1 < t.Count ? t[i + 1] : null;

            // "5 x 4", "$5.50 x 4", "5x4": multiplication between two values.
            if (tok.Text is "x" or "X" && prev is { IsValue: true } && next is { Kind: MathTokenKind.Number or MathTokenKind.LeftParen })
            {
                tok.Kind = MathTokenKind.Operator;
                tok.Text = "*";
                continue;
            }

            // "20% of 50", "1/2 of 10": multiplication.
            if (tok.Text.Equals("of", StringComparison.OrdinalIgnoreCase) && prev is { Kind: MathTokenKind.Number } && next is { Kind: MathTokenKind.Number }
                && (prev.Percent || (i >= 3 && t[i - 2].Text == "/" && t[i - 3].Kind == MathTokenKind.Number)))
            {
                tok.Kind = MathTokenKind.Operator;
                tok.Text = "*";
                continue;
            }
        }

        DropUnits(t);
    }

    // After a number: "hours", "minutes/hour", "per hour", "/hour" before an operator, ")" or "=" are units.
    private static void DropUnits(List<MathToken> t)
    {
        for (int i = 0; i < t.Count; i++)
        {
            if (t[i].Kind != MathTokenKind.Number)
                continue;
            int j = i + 1;
            if (j + 1 < t.Count && t[j].Text == "/" && !t[j].SpaceBefore && IsUnitWord(t[j + 1]) && !t[j + 1].SpaceBefore)
                j += 2; // "$12/hour"
            else if (j < t.Count && IsUnitWord(t[j]))
            {
                j++;
                if (j + 1 < t.Count && t[j].Text == "/" && IsUnitWord(t[j + 1]))
                    j += 2; // "40 minutes/hour"
            }
            else if (j + 1 < t.Count && t[j].Kind == MathTokenKind.Word && t[j].Text.Equals("per", StringComparison.OrdinalIgnoreCase) && IsUnitWord(t[j + 1]))
                j += 2; // "5 per hour"

            if (j == i + 1 || j >= t.Count)
                continue;
            var after = t[j];
            bool beforeArithmetic = after.Kind is MathTokenKind.Operator or MathTokenKind.RightParen or MathTokenKind.Equals;
            if (!beforeArithmetic)
                continue;
            t.RemoveRange(i + 1, j - i - 1);
            t[i].HadUnit = true;
        }
    }

    private static bool IsUnitWord(MathToken token) =>
        token.Kind == MathTokenKind.Word && token.Text.Length >= 2 && !OperationWords.Contains(token.Text) && !ConnectingWords.Contains(token.Text)
        && !token.Text.Equals("is", StringComparison.OrdinalIgnoreCase) && !token.Text.Equals("are", StringComparison.OrdinalIgnoreCase)
        && !(!token.SpaceBefore && token.Text is "st" or "nd" or "rd" or "th");
}
