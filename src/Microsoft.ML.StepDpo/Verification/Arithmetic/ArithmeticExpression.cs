namespace Microsoft.ML.StepDpo.Verification.Arithmetic;

/// <summary>
/// A parsed arithmetic expression (numbers, + - * / ^, unary minus, parentheses, "2(3)" as a product),
/// evaluated two ways: with "20%" as 0.2 and with "20%" as 20, since people write both "50*20% = 10" and
/// "100-20 = 80%".
/// </summary>
internal sealed class ArithmeticExpression
{
    private ArithmeticExpression(IReadOnlyList<MathToken> tokens, double fraction, double plain, int operators)
    {
        Tokens = tokens;
        ValuePercentAsFraction = fraction;
        ValuePercentAsNumber = plain;
        OperatorCount = operators;
    }

    public IReadOnlyList<MathToken> Tokens { get; }

    public double ValuePercentAsFraction { get; }

    public double ValuePercentAsNumber { get; }

    /// <summary>Binary operators (a leading unary minus is not counted).</summary>
    public int OperatorCount { get; }

    /// <summary>A single number, possibly negative: a stated result.</summary>
    public bool IsBareNumber => OperatorCount == 0;

    public bool HasPercent => Tokens.Any(t => t.Percent);

    /// <summary>Decimals of the number as written, when bare.</summary>
    public int StatedDecimals => Tokens.Where(t => t.Kind == MathTokenKind.Number).Select(t => t.Decimals).FirstOrDefault();

    public IEnumerable<MathToken> Numbers => Tokens.Where(t => t.Kind == MathTokenKind.Number);

    public string Text => string.Concat(Tokens.Select(t => t.Text));

    /// <summary>
    /// Relative uncertainty from operands that look like rounded repeating decimals (0.33 for 1/3, 0.67, 0.17):
    /// the author's own rounding, which the result inherits.
    /// </summary>
    public double InheritedRelativeError
    {
        get
        {
            double sum = 0;
            foreach (var n in Numbers)
            {
                if (n.Decimals >= 2 && LooksRounded(n.Value, n.Decimals))
                    sum += 0.5 * Math.Pow(10, -n.Decimals) / Math.Abs(n.Value);
            }

            return 1.5 * sum;
        }
    }

    public static ArithmeticExpression? TryParse(IReadOnlyList<MathToken> tokens)
    {
        if (tokens.Count == 0 || HasPercentShorthand(tokens))
            return null;
        var a = new Parser(tokens, percentAsFraction: true);
        var b = new Parser(tokens, percentAsFraction: false);
        double? fraction = a.ParseAll();
        double? plain = b.ParseAll();
        if (fraction is null || plain is null || double.IsNaN(fraction.Value) || double.IsInfinity(fraction.Value)
            || double.IsNaN(plain.Value) || double.IsInfinity(plain.Value))
            return null;
        return new ArithmeticExpression(tokens, fraction.Value, plain.Value, a.BinaryOperators);
    }

    // "50 - 10%" means 50 minus 10% of 50: a percentage added to or taken from a plain number is not plain arithmetic.
    private static bool HasPercentShorthand(IReadOnlyList<MathToken> tokens)
    {
        if (!tokens.Any(t => t.Percent) || tokens.All(t => t.Kind != MathTokenKind.Number || t.Percent))
            return false;
        for (int i = 0; i < tokens.Count; i++)
        {
            if (!tokens[i].Percent)
                continue;
            bool additiveBefore = i > 0 && tokens[i - 1].Text is "+" or "-" && i > 1 && tokens[i - 2].IsValue;
            bool additiveAfter = i + 1 < tokens.Count && tokens[i + 1].Text is "+" or "-";
            if (additiveBefore || additiveAfter)
                return true;
        }

        return false;
    }

    // x is within half a unit of its last digit of p/q for a small q, without being exactly a short decimal.
    private static bool LooksRounded(double x, int decimals)
    {
        double half = 0.5 * Math.Pow(10, -decimals) + 1e-12;
        foreach (int q in new[] { 3, 6, 7, 9 })
        {
            double p = Math.Round(x * q);
            double exact = p / q;
            if (Math.Abs(exact - x) <= half && Math.Abs(exact - x) > 1e-12)
                return true;
        }

        return false;
    }

    private sealed class Parser(IReadOnlyList<MathToken> tokens, bool percentAsFraction)
    {
        private int _pos;

        public int BinaryOperators { get; private set; }

        public double? ParseAll()
        {
            var v = Expression();
            return v is not null && _pos == tokens.Count ? v : null;
        }

        private MathToken? Peek => _pos < tokens.Count ? tokens[_pos] : null;

        private double? Expression()
        {
            var left = Term();
            while (left is not null && Peek is { Kind: MathTokenKind.Operator, Text: "+" or "-" } op)
            {
                _pos++;
                BinaryOperators++;
                var right = Term();
                if (right is null)
                    return null;
                left = op.Text == "+" ? left + right : left - right;
            }

            return left;
        }

        private double? Term()
        {
            var left = Power();
            while (left is not null)
            {
                var next = Peek;
                if (next is { Kind: MathTokenKind.Operator, Text: "*" or "/" })
                    _pos++;
                else if (next is not { Kind: MathTokenKind.LeftParen, SpaceBefore: false })
                    break; // "2(3+4)" multiplies; "12 (2+4)" and anything else end the term
                BinaryOperators++;
                var right = Power();
                if (right is null)
                    return null;
                if (next.Text == "/")
                {
                    if (right == 0)
                        return null;
                    left /= right;
                }
                else
                {
                    left *= right;
                }
            }

            return left;
        }

        private double? Power()
        {
            var b = Unary();
            if (b is not null && Peek is { Kind: MathTokenKind.Operator, Text: "^" })
            {
                _pos++;
                BinaryOperators++;
                var e = Power(); // right-associative
                if (e is null || Math.Abs(e.Value) > 64)
                    return null;
                return Math.Pow(b.Value, e.Value);
            }

            return b;
        }

        private double? Unary()
        {
            if (Peek is { Kind: MathTokenKind.Operator, Text: "-" or "+" } sign)
            {
                _pos++;
                var v = Unary();
                return v is null ? null : sign.Text == "-" ? -v : v;
            }

            return Primary();
        }

        private double? Primary()
        {
            var t = Peek;
            if (t is null)
                return null;
            if (t.Kind == MathTokenKind.Number)
            {
                _pos++;
                return t.Percent && percentAsFraction ? t.Value / 100 : t.Value;
            }

            if (t.Kind == MathTokenKind.LeftParen)
            {
                _pos++;
                var v = Expression();
                if (v is null || Peek is not { Kind: MathTokenKind.RightParen })
                    return null;
                _pos++;
                return v;
            }

            return null;
        }
    }
}
