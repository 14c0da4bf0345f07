using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Answers;

/// <summary>
/// Decides whether a predicted answer equals a reference answer, following Qwen2.5-Math's <c>math_equal</c>
/// (the grader Step-DPO results are reported with) on answers already normalized by <see cref="AnswerNormalizer"/>:
/// case-insensitive string match → multiple-choice letter → numbers (relative tolerance 1e-4; the reference answer
/// ×100 and ÷100 also accepted) → brackets ignored → tuples/intervals element-wise → matrices element-wise →
/// equations as <c>a-(b)</c> (either sign) and "x = …" against a value → expressions: constants numerically
/// (tolerance 1e-4), expressions with variables by evaluation at random points. Never throws. The work of one check
/// is bounded by the input (expressions of at most <see cref="MathExpression.MaxLength"/> characters and nesting 60,
/// comparisons nested at most 8 deep, linear-time regexes), not by a clock, so a verdict never depends on machine
/// load; a caller may still pass a time limit (on expiry: not equal, like Qwen2.5-Math's timeout).
/// </summary>
public static class AnswerEquivalence
{
    private const RegexOptions Linear = RegexOptions.CultureInvariant | RegexOptions.NonBacktracking;
    private static readonly Regex s_bracketed = new(@"^(\(|\[).+(\)|\])", Linear);
    private static readonly Regex s_braceList = new(@"\{.*,.*\}", Linear);
    // Points of both signs: |x| and x must differ, as they do for sympy.
    private static readonly double[] s_points = { 0.7131, -1.4142, 1.9213, -0.3719, 2.6457, 1.1583, -2.2361, 0.5227 };

    /// <summary>
    /// Whether the final answer of <paramref name="solution"/> (see <see cref="AnswerExtractor"/>) equals the
    /// reference answer; a reference answer holding a \boxed{} is extracted first, otherwise normalized.
    /// </summary>
    /// <param name="solution">The model's solution text.</param>
    /// <param name="reference">The reference answer.</param>
    /// <param name="timeout">Optional wall-clock limit of the comparison (on expiry: not equal). Default none: the
    /// verdict then depends only on the inputs.</param>
    public static bool IsCorrect(string? solution, string? reference, TimeSpan? timeout = null)
        => AreEquivalent(AnswerExtractor.Extract(solution), NormalizeReference(reference), timeout);

    /// <summary>
    /// The reference answer as the grader compares it: a GSM8K answer reduced first (see <see cref="ReduceReference"/>),
    /// then extracted from a \boxed{} if it has one, else normalized.
    /// </summary>
    public static string NormalizeReference(string? reference) => NormalizeReference(reference, plainUnits: false);

    /// <summary>
    /// The one rule every command and <c>Evaluate</c> apply to a reference answer before comparing: a GSM8K answer
    /// (reasoning ending "#### 1,234") becomes the text after its last "####", trimmed, without thousands separators
    /// ("1234"); any other text is returned as it is.
    /// </summary>
    /// <param name="reference">A reference answer or reference solution.</param>
    public static string ReduceReference(string? reference)
    {
        if (reference is null) return string.Empty;
        int i = reference.LastIndexOf("####", StringComparison.Ordinal);
        return i < 0 ? reference : reference[(i + 4)..].Trim().Replace(",", "");
    }

    internal static string NormalizeReference(string? reference, bool plainUnits)
    {
        reference = ReduceReference(reference);
        if (string.IsNullOrEmpty(reference)) return string.Empty;
        return reference.Contains("boxed", StringComparison.Ordinal)
            ? AnswerExtractor.Extract(reference, plainUnits)
            : AnswerNormalizer.Normalize(reference, skipUnits: false, plainUnits);
    }

    /// <summary><see cref="IsCorrect(string?, string?, TimeSpan?)"/> with the unit removal chosen (the plain loop for tests and benchmarks).</summary>
    internal static bool IsCorrect(string? solution, string? reference, bool plainUnits)
        => AreEquivalent(AnswerExtractor.Extract(solution, plainUnits), NormalizeReference(reference, plainUnits));

    /// <summary>Whether two normalized answers are equal (Qwen2.5-Math's <c>math_equal</c>).</summary>
    /// <param name="prediction">Normalized predicted answer.</param>
    /// <param name="reference">Normalized reference answer.</param>
    /// <param name="timeout">Optional wall-clock limit (on expiry: not equal). Default none: the verdict then depends
    /// only on the inputs.</param>
    public static bool AreEquivalent(string? prediction, string? reference, TimeSpan? timeout = null)
    {
        if (prediction is null || reference is null) return false;
        long deadline = timeout is { } t ? Stopwatch.GetTimestamp() + (long)(t.TotalSeconds * Stopwatch.Frequency) : long.MaxValue;
        try
        {
            return MathEqual(prediction, reference, deadline, 0);
        }
        catch (Exception e) when (e is TimeoutException or InsufficientExecutionStackException)
        {
            return false;
        }
    }

    private static void Check(long deadline)
    {
        if (Stopwatch.GetTimestamp() > deadline) throw new TimeoutException();
    }

    private static bool MathEqual(string prediction, string reference, long deadline, int depth)
    {
        Check(deadline);
        if (depth > 8) return false;
        if (string.Equals(prediction.Trim().ToLowerInvariant(), reference.Trim().ToLowerInvariant(), StringComparison.Ordinal)) return true;
        if (reference is "A" or "B" or "C" or "D" or "E" && AnswerExtractor.ChoiceAnswerClean(prediction) == reference) return true;

        if (ParseDigits(prediction) is { } p && ParseDigits(reference) is { } r)
        {
            foreach (var item in new[] { r / 100, r, r * 100 })
                if (PyNumbers.IsClose(p, item)) return true;
            return false;
        }
        if (prediction.Length == 0) return false;

        reference = reference.Trim();
        prediction = prediction.Trim();
        if (prediction.Contains("pmatrix", StringComparison.Ordinal) && !reference.Contains("pmatrix", StringComparison.Ordinal))
            reference = StrToPmatrix(reference);

        string predStr = prediction, refStr = reference;
        if ((prediction.StartsWith('[') && prediction.EndsWith(']') && !reference.StartsWith('('))
            || (prediction.StartsWith('(') && prediction.EndsWith(')') && !reference.StartsWith('[')))
        {
            predStr = predStr.Trim('[', ']', '(', ')');
            refStr = refStr.Trim('[', ']', '(', ')');
        }
        predStr = RemoveBrackets(predStr);
        refStr = RemoveBrackets(refStr);
        if (string.Equals(predStr.ToLowerInvariant(), refStr.ToLowerInvariant(), StringComparison.Ordinal)) return true;

        if (s_bracketed.IsMatch(prediction) && s_bracketed.IsMatch(reference))
        {
            var pp = prediction[1..^1].Split(',');
            var rp = reference[1..^1].Split(',');
            if (pp.Length == rp.Length)
            {
                bool all = true;
                for (int i = 0; i < pp.Length && all; i++) all = MathEqual(pp[i], rp[i], deadline, depth + 1);
                if (all) return true;
            }
        }

        if (IsMatrix(prediction) && IsMatrix(reference) && MatricesEqual(prediction, reference, deadline, depth)) return true;

        int pe = Count(prediction, '='), re = Count(reference, '=');
        if (pe == 1 && re == 1)
        {
            var a = prediction.Split('=');
            var b = reference.Split('=');
            string pd = $"{a[0].Trim()} - ({a[1].Trim()})", rd = $"{b[0].Trim()} - ({b[1].Trim()})";
            if (SymbolicEqual(pd, rd, deadline) || SymbolicEqual($"-({pd})", rd, deadline)) return true;
        }
        else if (pe == 1 && prediction.Split('=')[0].Trim().Length <= 2 && re == 0)
        {
            if (MathEqual(prediction.Split('=')[1], reference, deadline, depth + 1)) return true;
        }
        else if (re == 1 && reference.Split('=')[0].Trim().Length <= 2 && pe == 0)
        {
            if (MathEqual(prediction, reference.Split('=')[1], deadline, depth + 1)) return true;
        }

        return SymbolicEqual(prediction, reference, deadline);
    }

    private static int Count(string s, char c)
    {
        int n = 0;
        foreach (char x in s) if (x == c) n++;
        return n;
    }

    private static string RemoveBrackets(string s)
    {
        if (s.IndexOfAny(new[] { '{', '}', '(', ')' }) < 0) return s;
        return s.Replace("{", "").Replace("}", "").Replace("(", "").Replace(")", "");
    }

    /// <summary>math_equal's parse_digits: commas removed, Python float(), or a percentage.</summary>
    internal static double? ParseDigits(string s)
    {
        string t = s.Replace(",", "");
        if (PyNumbers.TryParseFloat(t, out var v)) return v;
        if (t.EndsWith('%'))
        {
            t = t[..^1];
            if (t.EndsWith('\\')) t = t[..^1];
            if (PyNumbers.TryParseFloat(t, out v)) return v / 100;
        }
        return null;
    }

    private static string StrToPmatrix(string s)
    {
        s = s.Trim();
        var parts = new List<string>();
        foreach (Match m in s_braceList.Matches(s))
            parts.Add("\\begin{pmatrix}" + m.Value.Trim('{', '}').Replace(",", "\\") + "\\end{pmatrix}");
        return string.Join(", ", parts);
    }

    private static bool IsMatrix(string s) =>
        (s.StartsWith("\\begin{pmatrix}", StringComparison.Ordinal) || s.StartsWith("\\begin{bmatrix}", StringComparison.Ordinal))
        && (s.EndsWith("\\end{pmatrix}", StringComparison.Ordinal) || s.EndsWith("\\end{bmatrix}", StringComparison.Ordinal));

    private static bool MatricesEqual(string p, string r, long deadline, int depth)
    {
        const int open = 15, close = 13; // "\begin{pmatrix}", "\end{pmatrix}"
        if (p.Length < open + close || r.Length < open + close) return false;
        static string[] Lines(string m) => m[15..^13].Split("\\\\").Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        var pl = Lines(p);
        var rl = Lines(r);
        if (pl.Length != rl.Length) return false;
        for (int i = 0; i < pl.Length; i++)
        {
            var pp = pl[i].Split('&');
            var rp = rl[i].Split('&');
            if (pp.Length != rp.Length) return false;
            for (int j = 0; j < pp.Length; j++)
                if (!MathEqual(pp[j], rp[j], deadline, depth + 1)) return false;
        }
        return true;
    }

    /// <summary>
    /// math_equal's sympy comparison, without a CAS: both sides parsed as expressions; constants compared
    /// numerically (relative tolerance 1e-4), expressions with variables compared at several points.
    /// </summary>
    private static bool SymbolicEqual(string a, string b, long deadline)
    {
        Check(deadline);
        string a1 = a.Replace("\\\\", "\\"), b1 = b.Replace("\\\\", "\\");
        var ea = MathExpression.TryParse(a1) ?? MathExpression.TryParse(a);
        var eb = MathExpression.TryParse(b1) ?? MathExpression.TryParse(b);
        if (ea is null || eb is null) return false; // unparsed strings were already compared as strings
        var vars = ea.Variables.Union(eb.Variables, StringComparer.Ordinal).ToArray();
        if (vars.Length == 0)
        {
            double x = ea.Evaluate(), y = eb.Evaluate();
            return PyNumbers.IsClose(x, y, 1e-4) || (double.IsNaN(x) && double.IsNaN(y) && false);
        }
        // Identity check at random points: all defined points must agree tightly; at least two must be defined.
        int defined = 0;
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        for (int k = 0; k < s_points.Length; k++)
        {
            Check(deadline);
            for (int v = 0; v < vars.Length; v++)
                values[vars[v]] = s_points[(k + 3 * v) % s_points.Length] + 0.1 * v;
            double x = ea.Evaluate(values), y = eb.Evaluate(values);
            if (double.IsNaN(x) || double.IsNaN(y) || double.IsInfinity(x) || double.IsInfinity(y))
            {
                if (double.IsNaN(x) != double.IsNaN(y)) return false;
                continue;
            }
            if (Math.Abs(x - y) > 1e-9 * Math.Max(1, Math.Max(Math.Abs(x), Math.Abs(y)))) return false;
            defined++;
        }
        return defined >= 2;
    }
}
