using System.Globalization;
using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Verification.Arithmetic;

/// <summary>
/// Splits normalized step text into numbers, operators, parentheses, equals signs, words and punctuation,
/// then resolves the words that are arithmetic ("5 x 4", "20% of 50", "10 plus 9 equals 19", "= about 3.3") and drops
/// unit phrases between a number and an operator ("2 hours * 60", "$12/hour * 8", "5 packs of bacon =").
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

            // "20% of 50", "1/2 of 10", "40% of the 260 students": multiplication.
            if (tok.Text.Equals("of", StringComparison.OrdinalIgnoreCase) && prev is { Kind: MathTokenKind.Number } && next is { Kind: MathTokenKind.Word }
                && s_determiners.Contains(next.Text) && i + 2 < t.Count && t[i + 2].Kind == MathTokenKind.Number
                && (prev.Percent || (i >= 3 && t[i - 2].Text == "/" && t[i - 3].Kind == MathTokenKind.Number)))
            {
                t.RemoveAt(i + 1);
                next = t[i + 1];
            }

            if (tok.Text.Equals("of", StringComparison.OrdinalIgnoreCase) && prev is { Kind: MathTokenKind.Number } && next is { Kind: MathTokenKind.Number }
                && (prev.Percent || (i >= 3 && t[i - 2].Text == "/" && t[i - 3].Kind == MathTokenKind.Number)))
            {
                tok.Kind = MathTokenKind.Operator;
                tok.Text = "*";
                continue;
            }
        }

        DropRoundingWords(t);
        ResolveWordOperators(t);
        DropUnits(t);
    }

    private static readonly HashSet<string> s_determiners = new(StringComparer.OrdinalIgnoreCase) { "the", "his", "her", "their", "its", "our", "my", "your", "these", "those", "all" };

    private static readonly HashSet<string> s_roundingWords = new(StringComparer.OrdinalIgnoreCase) { "about", "approximately", "approx", "roughly", "around" };

    // "= about 3.33", "is roughly 3,300": the number is rounded to the precision it shows.
    private static void DropRoundingWords(List<MathToken> t)
    {
        for (int i = 1; i + 1 < t.Count; i++)
        {
            if (t[i].Kind != MathTokenKind.Word || !s_roundingWords.Contains(t[i].Text) || t[i + 1].Kind != MathTokenKind.Number || t[i + 1].Percent)
                continue;
            var before = t[i - 1];
            if (!(before.Kind == MathTokenKind.Equals || (before.Kind == MathTokenKind.Word && before.Text.ToLowerInvariant() is "is" or "equals" or "to")))
                continue;
            var n = t[i + 1];
            t[i + 1] = new MathToken { Kind = MathTokenKind.Number, Text = n.Text, Value = n.Value, Decimals = n.Decimals, Rounded = true, SpaceBefore = true };
            t.RemoveAt(i);
        }
    }

    /// <summary>
    /// Operators written as words or letters between two quantities, units allowed on the left: "5 pizzas x 12 slices",
    /// "10 plus 9", "12 minus 3", "4 times 5", "12 divided by 3", "6 multiplied by 2", "= " as "equals", "is equal to",
    /// and "is", "gives", "makes", "yields", ", which is" when they state a result ("3 × 4 is 12 cookies.", not
    /// "8 + 2 is 2 more than 8").
    /// </summary>
    private static void ResolveWordOperators(List<MathToken> t)
    {
        for (int i = 1; i < t.Count; i++)
        {
            if (t[i].Kind != MathTokenKind.Word)
                continue;
            string w = t[i].Text.ToLowerInvariant();
            string? next1 = WordAt(t, i + 1), next2 = WordAt(t, i + 2);
            (string? op, int width) = w switch
            {
                "plus" => ("+", 1),
                "minus" => ("-", 1),
                "times" or "x" => ("*", 1),
                "multiplied" when next1 == "by" => ("*", 2),
                "divided" when next1 == "by" => ("/", 2),
                "equals" => ("=", 1),
                "equal" when next1 == "to" => ("=", 2),
                "is" when next1 == "equal" && next2 == "to" => ("=", 3),
                "is" or "gives" or "makes" or "yields" => ("=", 1),
                "which" or "that" when next1 == "is" => ("=", 2),
                _ => ((string?)null, 0),
            };
            int after = i + width;
            if (op is null || after >= t.Count || t[after].Kind is not (MathTokenKind.Number or MathTokenKind.LeftParen))
                continue;
            // "12 × 5, which is 60": the comma goes with the words.
            int from = w is "which" or "that" && t[i - 1] is { Kind: MathTokenKind.Punct, Text: "," } ? i - 1 : i;
            int left = ValueBefore(t, from);
            if (left < 0)
                continue;
            bool plainResult = w is "is" or "gives" or "makes" or "yields" or "which" or "that" && !(w == "is" && width == 3);
            if (plainResult && !StatesResult(t, left, after))
                continue;
            if (from < i)
            {
                t.RemoveAt(from);
                i = from;
                after--;
            }
            t[i] = op == "="
                ? new MathToken { Kind = MathTokenKind.Equals, Text = "=", SpaceBefore = true }
                : new MathToken { Kind = MathTokenKind.Operator, Text = op, SpaceBefore = t[i].SpaceBefore };
            t.RemoveRange(i + 1, width - 1);
        }
    }

    private static string? WordAt(List<MathToken> t, int i) =>
        i < t.Count && t[i].Kind == MathTokenKind.Word ? t[i].Text.ToLowerInvariant() : null;

    // The value that ends right before position i, possibly followed by a unit phrase ("5 pizzas x", "45 hours/week x"):
    // its index, or -1.
    private static int ValueBefore(List<MathToken> t, int i)
    {
        int j = i - 1;
        if (j >= 0 && t[j].IsValue)
            return j;
        int words = 0;
        while (j >= 0 && words < MaxUnitWords && (IsUnitWord(t[j]) || IsLinkWord(t[j]) || (t[j].Text == "/" && !t[j].SpaceBefore)))
        {
            j--;
            words++;
        }

        return words > 0 && j >= 0 && t[j].Kind == MathTokenKind.Number && j + 1 < i && (IsUnitWord(t[j + 1]) || IsLinkWord(t[j + 1])) ? j : -1;
    }

    // "is" states a result when an operator stands before the left value and only units follow the number ("is 60 slices.").
    private static bool StatesResult(List<MathToken> t, int left, int number)
    {
        if (t[number].Kind != MathTokenKind.Number || left == 0 || t[left - 1].Kind != MathTokenKind.Operator)
            return false;
        int words = 0;
        for (int k = number + 1; k < t.Count; k++)
        {
            if (t[k].Kind == MathTokenKind.Punct && t[k].Text is "." or "," or ";" or "!" or "?" or ")")
                return true;
            if (!IsUnitWord(t[k]) || ++words > MaxUnitWords)
                return false;
        }

        return true;
    }

    private const int MaxUnitWords = 5;

    // Words allowed inside a unit phrase, before another unit word: "12 slices per pizza", "5 packs of bacon", "$5 a day".
    private static bool IsLinkWord(MathToken token) =>
        token.Kind == MathTokenKind.Word && token.Text.ToLowerInvariant() is "per" or "of" or "a" or "an" or "each";

    /// <summary>
    /// After a number, a unit phrase before an operator, ")" or "=" is dropped: "hours", "minutes/hour", "per hour",
    /// "/hour", "slices per pizza", "packs of bacon", "cm full length", "an hour", "pencils each".
    /// </summary>
    private static void DropUnits(List<MathToken> t)
    {
        for (int i = 0; i < t.Count; i++)
        {
            if (t[i].Kind != MathTokenKind.Number)
                continue;
            int j = i + 1;
            if (j + 1 < t.Count && t[j].Text == "/" && !t[j].SpaceBefore && IsUnitWord(t[j + 1]) && !t[j + 1].SpaceBefore)
                j += 2; // "$12/hour"
            else
                j = UnitPhraseEnd(t, j);

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

    // The end (exclusive) of the unit phrase starting at j, or j when there is none.
    private static int UnitPhraseEnd(List<MathToken> t, int j)
    {
        int start = j, end = j;
        while (j < t.Count && j - start < MaxUnitWords)
        {
            if (IsUnitWord(t[j]))
            {
                j++;
                end = j;
            }
            else if (t[j].Text == "/" && end == j && end > start && j + 1 < t.Count && IsUnitWord(t[j + 1]))
                j++; // "minutes/hour"
            else if (IsLinkWord(t[j]) && !(j == start && t[j].Text.Equals("of", StringComparison.OrdinalIgnoreCase)))
            {
                if (t[j].Text.Equals("each", StringComparison.OrdinalIgnoreCase) && j > start)
                    end = j + 1; // "pencils each"
                j++;
            }
            else
                break;
        }

        return end;
    }

    private static bool IsUnitWord(MathToken token) =>
        token.Kind == MathTokenKind.Word && token.Text.Length >= 2 && !OperationWords.Contains(token.Text) && !ConnectingWords.Contains(token.Text)
        && !token.Text.Equals("is", StringComparison.OrdinalIgnoreCase) && !token.Text.Equals("are", StringComparison.OrdinalIgnoreCase)
        && !(!token.SpaceBefore && token.Text is "st" or "nd" or "rd" or "th");
}
