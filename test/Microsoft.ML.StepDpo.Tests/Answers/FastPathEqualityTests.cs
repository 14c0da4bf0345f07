using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.StepDpo.Answers;

namespace Microsoft.ML.StepDpo.Tests.Answers;

/// <summary>The fast unit removal and normalization against the plain, obviously-correct paths on many generated strings.</summary>
[TestClass]
public sealed class FastPathEqualityTests
{
    private static readonly string[] s_units = (string[])typeof(AnswerNormalizer)
        .GetField("s_unitTexts", BindingFlags.NonPublic | BindingFlags.Static)!.GetValue(null)!;

    // The reference loop literally: re.sub(r"(^|\W)" + unit + r"($|\W)", r"\1\2", s) for every unit, twice,
    // keeping the old string when the result is empty. "." in a unit is the regex wildcard, as there.
    private static readonly Regex[] s_unitRegexes = s_units
        .Select(u => new Regex(@"(^|[^\p{L}\p{N}_])" + Regex.Escape(u).Replace("\\.", "[^\\n]").Replace("\\ ", " ") + @"($|[^\p{L}\p{N}_])", RegexOptions.CultureInvariant))
        .ToArray();

    private static string RemoveUnitsByRegex(string s)
    {
        for (int pass = 0; pass < 2; pass++)
            foreach (var re in s_unitRegexes)
            {
                string t = re.Replace(s, "$1$2");
                if (t.Length > 0) s = t;
            }
        return s;
    }

    // Strings made of unit words, their pieces, separators and math: the shapes where removal order and boundaries matter.
    private static string Make(Random rng)
    {
        string[] pieces =
        {
            "a", "m", "s", "cm", "sq", "sq m", "p", ".", " ", "  ", "am", "pm", "t", "h", "min", "mins", "sec", "km", "kmph", "rs", "rs .",
            "\\text{", "}", "{", "(", ")", ",", "-", "+", "2", "15", "3.5", "x", "\\frac", "\\sqrt", "\\pi", "degree", "degrees", "°", "° f",
            "π r 2", "∏ cm ³", "²", "½", "é", "_", "\n", "meter", "meters", "inch", "inches", "feet", "hour", "hours", "day", "dollars", "and",
            "g", "kg", "unit", "units", "per", "apple", "ratio", "c", "d", "e", "b .", "a . m", "cu . m", " m east", "east", "\\$", "%",
        };
        int n = rng.Next(0, 9);
        var sb = new StringBuilder();
        for (int k = 0; k < n; k++)
        {
            sb.Append(pieces[rng.Next(pieces.Length)]);
            if (rng.Next(3) == 0) sb.Append(' ');
        }
        return sb.ToString();
    }

    [TestMethod]
    public void FastUnitRemovalEqualsTheReferenceRegexLoop()
    {
        var rng = new Random(20240611);
        for (int i = 0; i < 3000; i++)
        {
            string s = Make(rng);
            string expected = RemoveUnitsByRegex(s);
            Assert.AreEqual(expected, AnswerNormalizer.RemoveUnits(s), $"'{s}'");
            Assert.AreEqual(expected, AnswerNormalizer.RemoveUnitsPlain(s), $"plain '{s}'");
        }
    }

    [TestMethod]
    public void FastNormalizationEqualsThePlainPath()
    {
        var rng = new Random(99);
        string[] math = { "\\frac{1}{2}", "3/4", "10,000", "50\\%", "x = 3", "\\text{ cm}", "(1, 2)", "\\sqrt3", "2.000", "five", "\\dfrac12",
            "\\begin{array}{cc}1&2\\end{array}", "\\mbox{ m}", "90^\\circ", "inf", "\\left(", "\\right]" };
        for (int i = 0; i < 3000; i++)
        {
            string s = Make(rng) + (rng.Next(2) == 0 ? math[rng.Next(math.Length)] : "") + Make(rng);
            Assert.AreEqual(AnswerNormalizer.Normalize(s, skipUnits: false, plainUnits: true), AnswerNormalizer.Normalize(s), $"'{s}'");
        }
    }

    [TestMethod]
    public void UnitRemovalOnRealisticAnswers()
    {
        // (input, result of the reference loop) — checked against the regex loop above as well.
        (string In, string Out)[] cases =
        {
            ("15 cm", "15 "), ("5 sq m", "5 "), ("3 hours", "3 "), ("12 apples", "12 "), ("8 a.m.", "8 .."), ("2a+b", "2a+b"),
            ("\\frac{3}{4} m", "\\frac{3}{4} "), ("x^2 + 2x", "x^2 + 2x"), ("a", "a"), ("10 feet", "10 "), ("45 degrees", "45 "),
        };
        foreach (var (input, output) in cases)
        {
            Assert.AreEqual(output, RemoveUnitsByRegex(input), $"regex '{input}'");
            Assert.AreEqual(output, AnswerNormalizer.RemoveUnits(input), $"fast '{input}'");
        }
    }
}
