using System.Globalization;
using System.Text.RegularExpressions;

namespace StepDpo.Tools.Study;

/// <summary>
/// Where a wrong greedy solution of the built-in task first leaves the gold chain, and how. The study uses it to
/// say what a training run broke, not only how much: the generator's gold steps are "a op b = c." equations.
/// </summary>
internal static partial class ArithmeticErrorAnatomy
{
    /// <summary>The kinds of first departure from the gold chain.</summary>
    internal static readonly string[] Kinds = ["slip", "reading", "reading+slip", "malformed", "too_few_steps", "too_many_steps", "answer_line"];

    [GeneratedRegex(@"^\s*(-?\d+)\s*([-+*])\s*(-?\d+)\s*=\s*(-?\d+)\.\s*$")]
    private static partial Regex Equation();

    [GeneratedRegex(@"Step \d+:([^\n]*)")]
    private static partial Regex StepLine();

    private readonly record struct Eq(long A, char Op, long B, long C)
    {
        public bool True => C == (Op switch { '+' => A + B, '-' => A - B, _ => A * B });
        public bool SameOperation(Eq g) => Op == g.Op && ((A, B) == (g.A, g.B) || (Op != '-' && (A, B) == (g.B, g.A)));
    }

    private static Eq? Parse(string step)
    {
        var m = Equation().Match(step);
        // A number too long for a long (a runaway model output) counts as malformed.
        if (!m.Success
            || !long.TryParse(m.Groups[1].Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long a)
            || !long.TryParse(m.Groups[3].Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long b)
            || !long.TryParse(m.Groups[4].Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long c))
            return null;
        return new Eq(a, m.Groups[2].Value[0], b, c);
    }

    /// <summary>
    /// Classifies a wrong solution against the gold step bodies: at the first step that differs from gold,
    /// <c>slip</c> = right operands and operation, wrong result; <c>reading</c> = a true equation on the wrong
    /// operands or operation; <c>reading+slip</c> = both; <c>malformed</c> = not an equation. When every step
    /// matches gold: <c>too_few_steps</c>, <c>too_many_steps</c>, or <c>answer_line</c> (the final line is wrong).
    /// </summary>
    public static string Classify(IReadOnlyList<string> goldSteps, string solution)
    {
        var steps = StepLine().Matches(solution).Select(m => m.Groups[1].Value).ToList();
        for (int i = 0; i < steps.Count; i++)
        {
            if (i >= goldSteps.Count) return "too_many_steps";
            var gold = Parse(goldSteps[i]) ?? throw new InvalidDataException($"Gold step is not an equation: '{goldSteps[i]}'.");
            if (Parse(steps[i]) is not Eq s) return "malformed";
            bool sameOp = s.SameOperation(gold);
            if (sameOp && s.C == gold.C) continue;
            return sameOp ? "slip" : s.True ? "reading" : "reading+slip";
        }
        return steps.Count < goldSteps.Count ? "too_few_steps" : "answer_line";
    }

    /// <summary>Counts of <see cref="Kinds"/> over the wrong solutions (gold steps and solutions by index).</summary>
    public static Dictionary<string, int> Count(IReadOnlyList<IReadOnlyList<string>> goldSteps, IReadOnlyList<(string Solution, bool Correct)> solutions)
    {
        var counts = Kinds.ToDictionary(k => k, _ => 0);
        for (int i = 0; i < solutions.Count; i++)
            if (!solutions[i].Correct) counts[Classify(goldSteps[i], solutions[i].Solution)]++;
        return counts;
    }
}
