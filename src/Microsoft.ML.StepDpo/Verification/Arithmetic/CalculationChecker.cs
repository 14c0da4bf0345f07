using System.Globalization;
using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Verification.Arithmetic;

/// <summary>
/// Finds the calculations a step states ("16 - 3 - 4 = 9", "&lt;&lt;16-3-4=9&gt;&gt;9", "9 * 2 = $18",
/// "20% of 50 = 10", chains "a = b = c") and checks them. Precision comes first: a part of an equation
/// that may carry meaning in the surrounding words ("3 packs of 5 = 15", "2x = 10", "3:30",
/// "2 hours = 120 minutes") is not checked.
/// </summary>
internal static class CalculationChecker
{
    private static readonly Regex s_annotation = new(@"<<([^<>]*)>>", RegexOptions.CultureInvariant);
    private static readonly Regex s_visibleResultStart = new(@"^\$?-?\.?\d", RegexOptions.CultureInvariant);

    public static List<CheckedCalculation> Check(string step)
    {
        var results = new List<CheckedCalculation>();
        foreach (Match m in s_annotation.Matches(step))
            CheckAnnotation(m.Groups[1].Value, step.Substring(m.Index + m.Length), results);

        var tokens = MathTokenizer.Tokenize(MathTextNormalizer.Normalize(s_annotation.Replace(step, string.Empty)));
        int i = 0;
        while (i < tokens.Count)
        {
            if (!IsRunToken(tokens[i]))
            {
                i++;
                continue;
            }

            int start = i;
            while (i < tokens.Count && IsRunToken(tokens[i]))
                i++;
            CheckRun(tokens, start, i - 1, results);
        }

        return results;
    }

    private static bool IsRunToken(MathToken t) =>
        t.Kind is MathTokenKind.Number or MathTokenKind.Operator or MathTokenKind.LeftParen or MathTokenKind.RightParen or MathTokenKind.Equals;

    // GSM8K calculator annotation "<<48/2=24>>24": the annotation itself, then the visible result after it.
    private static void CheckAnnotation(string inner, string after, List<CheckedCalculation> results)
    {
        var tokens = MathTokenizer.Tokenize(MathTextNormalizer.Normalize(inner));
        if (tokens.Any(t => t.Kind is MathTokenKind.Word or MathTokenKind.Punct))
            return;
        var (parts, equals) = Split(tokens, 0, tokens.Count - 1);
        if (parts.Count < 2)
            return;
        var exprs = parts.Select(ArithmeticExpression.TryParse).ToList();
        CheckChain(exprs, equals, results);

        var computed = exprs[0];
        if (computed is null || computed.IsBareNumber)
            return;
        if (!s_visibleResultStart.IsMatch(after))
            return; // the visible result follows the annotation directly: "<<9*2=18>>18"
        var visible = MathTokenizer.Tokenize(MathTextNormalizer.Normalize(after));
        int k = visible.Count > 0 && visible[0] is { Kind: MathTokenKind.Operator, Text: "-" } ? 1 : 0;
        if (k >= visible.Count || visible[k].Kind != MathTokenKind.Number)
            return;
        if (visible.Count > k + 1 && !visible[k + 1].SpaceBefore && visible[k + 1].Kind is MathTokenKind.Word or MathTokenKind.Number)
            return; // "6th"
        if (visible.Count > k + 2 && !visible[k + 1].SpaceBefore && visible[k + 1].Text is ":" or "," && visible[k + 2] is { Kind: MathTokenKind.Number, SpaceBefore: false })
            return; // "3:30"
        var stated = ArithmeticExpression.TryParse(visible.GetRange(0, k + 1));
        if (stated is null)
            return;
        if (!Agrees(computed, stated, approximate: false))
            results.Add(new CheckedCalculation($"<<{inner}>>{stated.Text}", false, $"{computed.Text} is {Format(computed.ValuePercentAsFraction)}"));
    }

    private static void CheckRun(List<MathToken> t, int start, int end, List<CheckedCalculation> results)
    {
        var (parts, equals) = Split(t, start, end);
        if (parts.Count < 2)
            return;

        var exprs = new List<ArithmeticExpression?>(parts.Count);
        for (int p = 0; p < parts.Count; p++)
        {
            var part = parts[p];
            if (p == 0)
                part = TrimUnmatched(part, leading: true);
            if (p == parts.Count - 1)
                part = TrimUnmatched(part, leading: false);
            exprs.Add(part.Count == 0 || IsRange(part) ? null : ArithmeticExpression.TryParse(part));
        }

        // The first part: what stands before it may belong to it.
        int firstStart = start + (parts[0].Count - TrimUnmatched(parts[0], leading: true).Count);
        if (exprs[0] is not null && !FirstPartIsSelfContained(t, firstStart, exprs[0]!))
            exprs[0] = null;
        if (exprs[^1] is not null && !LastPartIsSelfContained(t, end, exprs[^1]!))
            exprs[^1] = null;

        // A number with a unit word ("= 60 minutes = 1 hour") may be a conversion, not an equality.
        var withUnit = new bool[parts.Count];
        for (int p = 0; p < parts.Count; p++)
            withUnit[p] = parts[p].Any(x => x.HadUnit);
        if (end + 1 < t.Count && t[end + 1].Kind == MathTokenKind.Word)
            withUnit[^1] = true;
        CheckChain(exprs, equals, results, withUnit);
    }

    // Words whose number labels what follows rather than starting a calculation.
    private static readonly HashSet<string> s_labelWords = new(StringComparer.OrdinalIgnoreCase)
    {
        "step", "part", "day", "week", "month", "year", "question", "problem", "chapter", "page", "room", "line", "item",
        "case", "option", "round", "stage", "level", "grade", "no", "number", "rule", "method", "phase", "task", "exercise", "example",
    };

    private static bool FirstPartIsSelfContained(List<MathToken> t, int first, ArithmeticExpression expr)
    {
        var head = t[first];
        var prev = first > 0 ? t[first - 1] : null;
        if (head.Kind == MathTokenKind.Operator)
        {
            // Only a sign glued to its number ("is -5 + 3") starts an expression; "apples - 5", "hours * 60" do not.
            bool sign = head.Text == "-" && head.SpaceBefore && first + 1 < t.Count && !t[first + 1].SpaceBefore;
            if (!sign)
                return false;
        }

        if (prev is null)
            return true;
        if (!head.SpaceBefore && prev.Kind is MathTokenKind.Word or MathTokenKind.Punct)
            return false; // "3:30 - 2:00", "x2", "sqrt(16)"
        if (prev.Kind != MathTokenKind.Word)
            return true;
        if (prev.Text.ToLowerInvariant() is "from" or "between" or "ages" or "aged" && expr.Tokens.Count >= 3 && expr.Tokens[1].Text == "-"
            && expr.Tokens[0].Kind == MathTokenKind.Number && expr.Tokens[2].Kind == MathTokenKind.Number)
            return false; // "from 2 - 5 pm", "from 9 - 5": a range
        if (head.Kind == MathTokenKind.Number && s_labelWords.Contains(prev.Text))
            return false; // "Step 2 - 45 x 4 = 180": a label's number, then a dash
        if (expr.IsBareNumber || MathTokenizer.OperationWords.Contains(prev.Text))
            return false; // "3 packs of 5 = 15", "twice 3 + 1 = 7"
        if (MathTokenizer.ConnectingWords.Contains(prev.Text))
        {
            // "12 divided by 3 + 1", "half of 10 + 2", "3 packs of 5 * 2": a number or an operation word shortly before.
            for (int j = first - 2; j >= Math.Max(0, first - 4); j--)
            {
                if (t[j].Kind is MathTokenKind.Punct or MathTokenKind.Equals)
                    break;
                if (t[j].Kind is MathTokenKind.Number or MathTokenKind.RightParen || (t[j].Kind == MathTokenKind.Word && MathTokenizer.OperationWords.Contains(t[j].Text)))
                    return false;
            }
        }

        // "2 hours 30 minutes * 2": the expression continues a compound quantity.
        if (head.Kind == MathTokenKind.Number && head.HadUnit && first >= 2 && t[first - 2].Kind == MathTokenKind.Number)
            return false;
        return true;
    }

    private static bool LastPartIsSelfContained(List<MathToken> t, int last, ArithmeticExpression expr)
    {
        var tail = t[last];
        var next = last + 1 < t.Count ? t[last + 1] : null;
        if (tail.Kind == MathTokenKind.Operator)
            return false;
        if (next is null)
            return true;
        if (!next.SpaceBefore && next.Kind == MathTokenKind.Word && (next.Text.Length < 2 || next.Text.ToLowerInvariant() is "st" or "nd" or "rd" or "th"))
            return false; // "= 6x", "= 5th"; "= 125cm" is a unit
        var afterNext = last + 2 < t.Count ? t[last + 2] : null;
        if (!next.SpaceBefore && next.Text is ":" or "," && afterNext is { Kind: MathTokenKind.Number, SpaceBefore: false })
            return false; // "= 3:30", "= 2,5"
        if (next.Kind == MathTokenKind.Word && afterNext?.Kind == MathTokenKind.Number)
        {
            var third = last + 3 < t.Count ? t[last + 3] : null;
            if (next.Text.Equals("and", StringComparison.OrdinalIgnoreCase) || third is null || third.Kind is not (MathTokenKind.Operator or MathTokenKind.Equals))
                return false; // "= 2 hours 30 minutes", "= 3 and 1/2"
        }

        return true;
    }

    // "5-10" written without spaces, smaller number first, is a range, not a subtraction.
    private static bool IsRange(List<MathToken> tk) =>
        tk.Count == 3 && tk[1].Text == "-" && !tk[1].SpaceBefore && !tk[2].SpaceBefore && tk[0].Kind == MathTokenKind.Number
        && tk[2].Kind == MathTokenKind.Number && tk[0].Value < tk[2].Value;

    private static (List<List<MathToken>> Parts, List<MathToken> EqualSigns) Split(IReadOnlyList<MathToken> t, int start, int end)
    {
        var parts = new List<List<MathToken>> { new() };
        var equals = new List<MathToken>();
        for (int i = start; i <= end; i++)
        {
            if (t[i].Kind == MathTokenKind.Equals)
            {
                equals.Add(t[i]);
                parts.Add(new List<MathToken>());
            }
            else
            {
                parts[^1].Add(t[i]);
            }
        }

        return (parts, equals);
    }

    // "(5 + 3 = 8)": the run's outer parentheses belong to the sentence, not to the parts.
    private static List<MathToken> TrimUnmatched(List<MathToken> part, bool leading)
    {
        int balance = part.Sum(x => x.Kind == MathTokenKind.LeftParen ? 1 : x.Kind == MathTokenKind.RightParen ? -1 : 0);
        int from = 0, to = part.Count;
        if (leading)
        {
            while (balance > 0 && from < to && part[from].Kind == MathTokenKind.LeftParen)
            {
                from++;
                balance--;
            }
        }
        else
        {
            while (balance < 0 && to > from && part[to - 1].Kind == MathTokenKind.RightParen)
            {
                to--;
                balance++;
            }
        }

        return part.GetRange(from, to - from);
    }

    private static void CheckChain(List<ArithmeticExpression?> exprs, List<MathToken> equals, List<CheckedCalculation> results, bool[]? withUnit = null)
    {
        for (int i = 0; i + 1 < exprs.Count; i++)
        {
            var l = exprs[i];
            var r = exprs[i + 1];
            if (l is null || r is null)
                continue;
            // Two bare numbers are compared only inside a chain ("12*1.5 = 18 = 18") and without units;
            // otherwise they are a restatement or a conversion ("2 hours = 120 minutes", "3 packs of 5 = 15").
            if (l.IsBareNumber && r.IsBareNumber && (i == 0 || (withUnit is not null && (withUnit[i] || withUnit[i + 1]))))
                continue;
            // "1 hour = 60 minutes x 2": a quantity with a unit restated in another unit, then computed on.
            if (l.IsBareNumber && withUnit is not null && withUnit[i] && !r.IsBareNumber)
                continue;
            bool approx = equals[i].Approximate;
            string text = $"{l.Text}{equals[i].Text}{r.Text}";
            if (Agrees(l, r, approx))
            {
                results.Add(new CheckedCalculation(text, true, string.Empty));
                continue;
            }

            var computed = r.IsBareNumber ? l : l.IsBareNumber ? r : l;
            results.Add(new CheckedCalculation(text, false, $"{computed.Text} is {Format(computed.ValuePercentAsFraction)}"));
        }
    }

    private static bool Agrees(ArithmeticExpression l, ArithmeticExpression r, bool approximate)
    {
        if (r.IsBareNumber)
            return Matches(l, r, approximate);
        if (l.IsBareNumber)
            return Matches(r, l, approximate);
        // Two expressions: equal values, or a running computation "20*5 = 100 - 20 = 80" where the
        // right side goes on from the left side's result.
        if (Matches(l, r, approximate) || Matches(r, l, approximate))
            return true;
        return r.Numbers.Any(n => Matches(l, n, approximate));
    }

    private static bool Matches(ArithmeticExpression computed, ArithmeticExpression stated, bool approximate)
    {
        if (stated.IsBareNumber)
            return stated.Numbers.Any() && Matches(computed, stated.ValuePercentAsFraction, stated.ValuePercentAsNumber, stated.StatedDecimals, stated.HasPercent, approximate, stated.Numbers.Any(n => n.Rounded));
        // Stated as an expression: compare values exactly (up to rounding carried by either side).
        return Close(computed.ValuePercentAsFraction, stated.ValuePercentAsFraction, 9, approximate, computed.InheritedRelativeError + stated.InheritedRelativeError)
            || Close(computed.ValuePercentAsNumber, stated.ValuePercentAsNumber, 9, approximate, computed.InheritedRelativeError + stated.InheritedRelativeError);
    }

    private static bool Matches(ArithmeticExpression computed, MathToken number, bool approximate) =>
        Matches(computed, number.Percent ? number.Value / 100 : number.Value, number.Value, number.Decimals, number.Percent, approximate, number.Rounded);

    private static bool Matches(ArithmeticExpression computed, double statedFraction, double statedPlain, int decimals, bool statedPercent, bool approximate, bool rounded)
    {
        double err = computed.InheritedRelativeError;
        foreach (double c in new[] { computed.ValuePercentAsFraction, computed.ValuePercentAsNumber })
        {
            if (Close(c, statedPlain, decimals, approximate, err, rounded))
                return true;
            if (statedPercent && Close(c, statedFraction, decimals + 2, approximate, err, rounded))
                return true;
        }

        return false;
    }

    /// <summary>
    /// Whether a computed value and a stated one agree, tolerating the rounding the text shows: a
    /// non-integer result may be rounded, truncated or rounded up at the stated number's last decimal
    /// ("10/3 = 3.33", "= 3.3", "= 3", "$3.34"); an integer result must be exact unless the text says it is rounded
    /// ("≈ 3.3", "= about 3,300": to within a unit of the last decimal shown, or of a whole number's last nonzero digit).
    /// </summary>
    internal static bool Close(double computed, double stated, int statedDecimals, bool approximate, double inheritedRelativeError, bool rounded = false)
    {
        double diff = Math.Abs(computed - stated);
        double scale = Math.Max(1, Math.Abs(computed));
        if (diff <= 1e-9 * scale)
            return true;
        double unit = Math.Pow(10, -statedDecimals);
        double tolerance = 0;
        if (Math.Abs(computed - Math.Round(computed)) > 1e-9 * scale)
            tolerance = unit;
        if (rounded || approximate)
        {
            // Rounded to the precision shown: the last decimal, or the last nonzero digit of a whole number ("≈ 3,300").
            for (double v = Math.Round(Math.Abs(stated)); statedDecimals <= 0 && v >= 10 && v % 10 == 0; v /= 10)
                unit *= 10;
            tolerance = Math.Max(tolerance, unit);
        }
        if (inheritedRelativeError > 0)
            tolerance = Math.Max(tolerance, inheritedRelativeError * Math.Abs(computed) + 0.5 * unit);
        return diff < tolerance - 1e-12 * scale;
    }

    private static string Format(double v) => Math.Round(v, 6).ToString("0.######", CultureInfo.InvariantCulture);
}
