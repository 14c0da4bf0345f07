using Microsoft.ML.StepDpo.Answers;

namespace Microsoft.ML.StepDpo.Tests.Answers;

[TestClass]
public sealed class AnswerNormalizerTests
{
    [TestMethod]
    [DataRow("\\dfrac{1}{2}", "\\frac{1}{2}")]
    [DataRow("\\tfrac12", "\\frac{1}{2}")]
    [DataRow("\\frac1{72}", "\\frac{1}{72}")]
    [DataRow("3/4", "\\frac{3}{4}")]
    [DataRow("\\left( 1, 2 \\right)", "(1,2)")]
    [DataRow("90^\\circ", "90")]
    [DataRow("90^{\\circ}", "90")]
    [DataRow("\\$18.90", "18.90")]
    [DataRow("5\\text{ cm}", "5")]
    [DataRow("10\\text{ inches}", "10")]
    [DataRow("x = 3", "3")]
    [DataRow("k=7", "7")]
    [DataRow("3.0", "3")]
    [DataRow("12.500", "12.500")]
    [DataRow("2.000\\pi", "2\\pi")]
    [DataRow(".5", "0.5")]
    [DataRow("50\\%", "50")]
    [DataRow("\\sqrt3", "\\sqrt{3}")]
    [DataRow("\\begin{bmatrix}1\\\\2\\end{bmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}")]
    [DataRow("five", "5")]
    [DataRow("twenty one", "21")]
    [DataRow("007", "7")]
    [DataRow("\\text{Monday}", "Monday")]
    [DataRow("$4$.", "4")]
    [DataRow("a", "a")] // a unit word alone is kept (removal would leave nothing)
    [DataRow("12 m", "12")]
    [DataRow("\\emptyset", "{}")]
    [DataRow("3\\!000", "3000")]
    [DataRow("one point five", "1.5")]     // word2number: digit words after "point" make a float
    [DataRow("2 million", "1000000")]      // word2number keeps only the words: "million" alone is 10^6
    [DataRow("two thousand and five", "2005")]
    [DataRow("seven days", "7")]
    [DataRow("\u0663\u0664", "34")]        // Python int() reads any decimal digits
    public void NormalizesLikeTheReference(string input, string expected)
        => Assert.AreEqual(expected, AnswerNormalizer.Normalize(input));

    [TestMethod]
    public void UnitRemovalRespectsWordBoundaries()
    {
        Assert.AreEqual("2a+b", AnswerNormalizer.RemoveUnit("2a+b", "a"));
        Assert.AreEqual("+b", AnswerNormalizer.RemoveUnit("a+b", "a"));
        // A match consumes its boundary characters: the reference needs its second pass for "a a".
        Assert.AreEqual(" a", AnswerNormalizer.RemoveUnit("a a", "a"));
        Assert.AreEqual("5 ", AnswerNormalizer.RemoveUnit("5 p.m", "p . m".Replace(" ", "")));
    }
}

[TestClass]
public sealed class UnitRemovalAgainstRegexTests
{
    [TestMethod]
    public void FastScannerMatchesThePlainRegex()
    {
        var rng = new Random(7);
        string[] units = { "a", "m", "cm", "s .", "p . m", "sq m", "as", "t" };
        string alphabet = "am cs.pq+-{}\\t1";
        for (int i = 0; i < 4000; i++)
        {
            var chars = new char[rng.Next(0, 14)];
            for (int k = 0; k < chars.Length; k++) chars[k] = alphabet[rng.Next(alphabet.Length)];
            string s = new(chars);
            foreach (var unit in units)
            {
                string pattern = @"(^|[^\w])" + System.Text.RegularExpressions.Regex.Escape(unit).Replace("\\.", "[^\\n]").Replace("\\ ", " ") + @"($|[^\w])";
                string expected = System.Text.RegularExpressions.Regex.Replace(s, pattern, "$1$2");
                Assert.AreEqual(expected, AnswerNormalizer.RemoveUnit(s, unit), $"'{s}' unit '{unit}'");
            }
        }
    }
}
