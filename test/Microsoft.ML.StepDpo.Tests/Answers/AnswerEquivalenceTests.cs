using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.ML.StepDpo.Answers;

namespace Microsoft.ML.StepDpo.Tests.Answers;

[TestClass]
public sealed class AnswerEquivalenceTests
{
    private static bool Eq(string a, string b) =>
        AnswerEquivalence.AreEquivalent(AnswerNormalizer.Normalize(a), AnswerNormalizer.Normalize(b));

    [TestMethod]
    [DataRow("\\frac{1}{2}", "0.5")]
    [DataRow("\\dfrac12", "\\frac{1}{2}")]
    [DataRow("1/2", "\\frac{1}{2}")]
    [DataRow("10,000", "10000")]
    [DataRow("50\\%", "0.5")]       // percent: the reference ×100 is accepted
    [DataRow("0.5", "50")]
    [DataRow("3.0", "3")]
    [DataRow("x = 3", "3")]
    [DataRow("90^\\circ", "90")]
    [DataRow("\\$5", "5")]
    [DataRow("5\\text{ cm}", "5")]
    [DataRow("(1, 2)", "(1,2)")]
    [DataRow("(1,2)", "[1,2]")]      // the reference grader ignores bracket kinds element-wise
    [DataRow("[1, 2)", "[1,2)")]
    [DataRow("(\\frac{1}{2}, 3)", "(0.5, 3)")]
    [DataRow("\\begin{pmatrix} 0.5 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} \\frac{1}{2} \\\\ 2 \\end{pmatrix}")]
    [DataRow("2\\sqrt{2}", "\\sqrt{8}")]
    [DataRow("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}")]
    [DataRow("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}")]
    [DataRow("x^2+2x+1", "(x+1)^2")]
    [DataRow("u+v=3", "u+v-3=0")]  // (not a, b: the reference strips "a" as a unit word)
    [DataRow("2u-v=-1", "v-2u=1")]   // equations equal up to sign
    [DataRow("y=2x+1", "2x+1")]      // "y=" is dropped by normalization
    [DataRow("2r\\pi", "\\pi\\cdot2r")]
    [DataRow("A", "A")]
    [DataRow("(B)", "B")]
    [DataRow("1.00001", "1")]        // relative tolerance 1e-4
    [DataRow("\\sin^2 x + \\cos^2 x", "1")]
    [DataRow("\\binom{5}{2}", "10")]
    [DataRow("\\sqrt[3]{27}", "3")]
    [DataRow("2^10", "1024")]         // the exponent is the whole number token, as sympy reads it
    [DataRow("1,024", "2^{10}")]
    [DataRow("10\\,000", "10000")]    // a thin space between digits joins them
    [DataRow("x(x+1)", "x(x+1)")]
    public void Equal(string prediction, string reference) => Assert.IsTrue(Eq(prediction, reference), $"{prediction} vs {reference}");

    [TestMethod]
    [DataRow("0.5", "0.6")]
    [DataRow("\\frac{1}{3}", "0.33")]
    [DataRow("x^2", "2x")]
    [DataRow("(1,2)", "(2,1)")]
    [DataRow("3.5", "3\\frac{1}{2}")]   // as the reference's LaTeX parser: 3\frac{1}{2} is 3·½
    [DataRow("10{,}000", "10000")]      // the reference grader does not read {,} separators
    [DataRow("", "5")]
    [DataRow("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}")]
    [DataRow("u+v=3", "u-v=3")]
    [DataRow("y-2x=1", "2x+1")]      // an equation against an expression (as sympy: not equal)
    [DataRow("B", "C")]
    [DataRow("\\sqrt{2}", "1.41")]
    [DataRow("Monday", "Tuesday")]
    [DataRow("x+1", "x+1.0001")]
    [DataRow("\\pi", "3.14159")]     // sympy's LaTeX parser reads \pi as a symbol, so the reference grader says no
    [DataRow("|x|", "x")]            // differs for negative x
    [DataRow("n(n+1)", "n^2+n")]     // n(...) is a function application there
    public void NotEqual(string prediction, string reference) => Assert.IsFalse(Eq(prediction, reference), $"{prediction} vs {reference}");

    [TestMethod]
    public void IsCorrectExtractsFromSolutionsAndBoxedReferences()
    {
        Assert.IsTrue(AnswerEquivalence.IsCorrect("Step 1: ...\nThe answer is: $\\frac{3}{6}$", "\\boxed{0.5}"));
        Assert.IsTrue(AnswerEquivalence.IsCorrect("... so $\\boxed{1,250}$ dollars.", "1250"));
        Assert.IsFalse(AnswerEquivalence.IsCorrect("... so $\\boxed{1,240}$ dollars.", "1250"));
    }

    [TestMethod]
    public void RandomStringsNeverThrowAndStayBounded()
    {
        var rng = new Random(12345);
        string[] pieces = { "\\frac", "{", "}", "(", ")", "[", "]", "\\sqrt", "^", "_", "x", "y", "=", ",", "1", "23", ".", "-", "+", "*", "/",
            "\\boxed{", "\\text{", " ", "\\left(", "\\right)", "\\begin{pmatrix}", "\\end{pmatrix}", "&", "\\\\", "%", "$", "\\pi", "e", "!",
            "The answer is", "\\infty", "|", "\\cdot", "é", "\n", "\\", "0", "a", "inf", "and", "\\log_", "\\sin" };
        var verdicts = new List<bool>();
        for (int i = 0; i < 3000; i++)
        {
            string Make()
            {
                int n = rng.Next(0, 40);
                var sb = new System.Text.StringBuilder();
                for (int k = 0; k < n; k++) sb.Append(rng.Next(4) == 0 ? ((char)rng.Next(32, 0x2000)).ToString() : pieces[rng.Next(pieces.Length)]);
                return sb.ToString();
            }
            string a = Make(), b = Make();
            verdicts.Add(AnswerEquivalence.IsCorrect(a, b));
            verdicts.Add(AnswerEquivalence.AreEquivalent(a, b));
            Assert.IsTrue(AnswerEquivalence.AreEquivalent(a, a), $"an answer equals itself: '{a}'");
        }
        // Pathological sizes, deep nesting and long inputs, complete (bounded by input limits, not by a clock).
        string deep = new string('{', 50_000) + "\\boxed{" + string.Concat(Enumerable.Repeat("\\frac{(", 5000)) + new string(')', 5000);
        _ = AnswerEquivalence.IsCorrect(deep, deep[..1000]);
        string tuple = string.Concat(Enumerable.Repeat("(1,", 2000));
        _ = AnswerEquivalence.AreEquivalent(tuple, tuple + "x");
        Assert.IsTrue(verdicts.Contains(true) && verdicts.Contains(false), "the fuzz exercises both verdicts");
    }

    /// <summary>
    /// A regex match timeout measures wall time: under machine load (a GC pause, a busy core) it fired on ordinary
    /// answers and silently changed the extracted or normalized answer, hence the grade (and a judge reply into "no
    /// verdict"). The grader's and the judge parser's regexes use
    /// the linear-time engine with no timeout, so a verdict depends only on its inputs.
    /// </summary>
    [TestMethod]
    public void TheGradersRegexesHaveNoWallClockTimeout()
    {
        var regexes = new[] { typeof(AnswerExtractor), typeof(AnswerNormalizer), typeof(AnswerEquivalence), typeof(Microsoft.ML.StepDpo.Verification.JudgeReplyParser), typeof(Microsoft.ML.StepDpo.Text.SolutionText) }
            .SelectMany(t => t.GetFields(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
                .Where(f => f.FieldType == typeof(Regex))
                .Select(f => (Name: $"{t.Name}.{f.Name}", Regex: (Regex)f.GetValue(null)!)))
            .ToList();
        Assert.IsTrue(regexes.Count >= 11, $"found {regexes.Count} regexes");
        foreach (var (name, regex) in regexes)
        {
            Assert.AreEqual(Regex.InfiniteMatchTimeout, regex.MatchTimeout, $"{name} has a wall-clock match timeout");
            Assert.IsTrue(regex.Options.HasFlag(RegexOptions.NonBacktracking), $"{name} is not linear-time");
        }
    }
}
