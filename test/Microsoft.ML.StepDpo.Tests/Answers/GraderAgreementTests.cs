using Microsoft.ML.StepDpo.Answers;

namespace Microsoft.ML.StepDpo.Tests.Answers;

/// <summary>
/// Whole model outputs against references, with the verdict of Qwen2.5-Math's grader (extract_answer + strip_string +
/// math_equal with sympy 1.14 / latex2sympy2, run on each pair when these rows were written). Its quirks are kept on
/// purpose: \pi is a sympy symbol (not 3.14159), n(n+1) is a function application, \sqrt3 without braces does not
/// parse ("2\sqrt3" is read as 2), 2^10 is 1024, "10\,000" is 10000 but "10{,}000" is not.
/// </summary>
[TestClass]
public sealed class GraderAgreementTests
{
    [TestMethod]
    [DataRow("Step 1: 3 packs cost $3 \\times 4 = 12$ dollars.\nThe answer is: 12", "12", true)]
    [DataRow("So she pays $\\boxed{\\$1,250}$ in total.", "1250", true)]
    [DataRow("The total is $\\boxed{1250}$ dollars.", "1,250", true)]
    [DataRow("Therefore the area is $\\boxed{18 \\text{ square units}}$.", "18", true)]
    [DataRow("The length is $\\boxed{15\\text{ cm}}$.", "15", true)]
    [DataRow("The answer is $15 \\text{ inches}$.", "14", false)]
    [DataRow("So the probability is $\\boxed{\\dfrac{5}{12}}$.", "\\frac{5}{12}", true)]
    [DataRow("So the probability is $\\boxed{0.4167}$.", "\\frac{5}{12}", true)]
    [DataRow("So the probability is $\\boxed{0.42}$.", "\\frac{5}{12}", false)]
    [DataRow("The answer is: 25\\%", "0.25", true)]
    [DataRow("The answer is: 25\\%", "25", true)]
    [DataRow("The answer is: 0.25", "25\\%", true)]
    [DataRow("The answer is: 2.5", "25\\%", false)]
    [DataRow("Final Answer: The final answer is $\\frac{\\pi}{3}$. I hope it is correct.", "\\frac{\\pi}{3}", true)]
    [DataRow("Final Answer: The final answer is $60^\\circ$. I hope it is correct.", "\\frac{\\pi}{3}", false)]
    [DataRow("The angle is $\\boxed{60^\\circ}$.", "60", true)]
    [DataRow("Hence $\\boxed{2\\pi}$.", "6.2832", false)]
    [DataRow("Hence $\\boxed{2\\pi}$.", "2 \\pi", true)]
    [DataRow("Hence $\\boxed{\\pi r^2}$.", "r^2\\pi", false)]
    [DataRow("We get $\\boxed{2\\sqrt{3}}$.", "\\sqrt{12}", true)]
    [DataRow("We get $\\boxed{2\\sqrt{3}}$.", "3.4641", true)]
    [DataRow("We get $\\boxed{2 \\sqrt 3}$.", "3.4641", false)]
    [DataRow("We get $\\boxed{\\frac{\\sqrt{2}}{2}}$.", "\\frac{1}{\\sqrt{2}}", true)]
    [DataRow("The interval is $\\boxed{[2, 5)}$.", "[2,5)", true)]
    [DataRow("The interval is $\\boxed{(2, 5)}$.", "[2,5)", true)]
    [DataRow("The solution set is $\\boxed{(-\\infty, -2) \\cup (3, \\infty)}$.", "(-\\infty,-2)\\cup(3,\\infty)", true)]
    [DataRow("The point is $\\boxed{(1, -2)}$.", "(1,-2)", true)]
    [DataRow("The point is $\\boxed{(-2, 1)}$.", "(1,-2)", false)]
    [DataRow("So $\\mathbf{v} = \\boxed{\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}}$.", "\\begin{pmatrix}1\\\\-2\\end{pmatrix}", true)]
    [DataRow("So $\\mathbf{M} = \\boxed{\\begin{bmatrix} 1 & 0 \\\\ 0 & 1 \\end{bmatrix}}$.", "\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}", true)]
    [DataRow("So $\\mathbf{v} = \\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}$.", "\\begin{pmatrix}2\\\\1\\end{pmatrix}", false)]
    [DataRow("The speed of light is about $\\boxed{3 \\times 10^8}$ m/s.", "300000000", true)]
    [DataRow("The answer is $\\boxed{1.5 \\times 10^{-3}}$.", "0.0015", true)]
    [DataRow("The answer is $\\boxed{1.5 \\times 10^{-3}}$.", "0.0016", false)]
    [DataRow("The answer is $\\boxed{2^{10}}$.", "1024", true)]
    [DataRow("The answer is $\\boxed{10\\,000}$.", "10000", true)]
    [DataRow("The answer is $\\boxed{10{,}000}$.", "10000", false)]
    [DataRow("The sum is $\\boxed{\\frac{n(n+1)}{2}}$.", "\\frac{n^2+n}{2}", false)]
    [DataRow("The sum is $\\boxed{\\frac{n^2+n}{2}}$.", "\\frac{n(n+1)}{2}", false)]
    [DataRow("The expression is $\\boxed{(x+1)^2}$.", "x^2+2x+1", true)]
    [DataRow("The expression is $\\boxed{|x|}$.", "x", false)]
    [DataRow("The line is $\\boxed{y = 2x + 3}$.", "2x+3", true)]
    [DataRow("The plane is $\\boxed{3x - 2y + z = 6}$.", "-3x+2y-z=-6", false)]
    [DataRow("The answer is $\\boxed{\\text{(C)}}$.", "C", true)]
    [DataRow("The answer is $\\boxed{D}$.", "C", false)]
    [DataRow("The mixed number is $\\boxed{3\\frac{1}{2}}$.", "\\frac{7}{2}", false)]
    [DataRow("The answer is $\\boxed{\\pi}$.", "3.14159", false)]
    [DataRow("The roots are $\\boxed{2, -1}$.", "-1, 2", false)]
    [DataRow("The roots are $\\boxed{-1, 2}$.", "-1, 2", true)]
    [DataRow("It takes $\\boxed{8 \\text{ hours}}$.", "8", true)]
    [DataRow("So $x = \\boxed{-3}$.", "-3", true)]
    [DataRow("So $k = \\boxed{\\frac{1}{12}}$.", "0.0833333333333333", true)]
    [DataRow("The value is $\\boxed{\\frac{1+\\sqrt{5}}{2}}$.", "\\frac{\\sqrt{5}+1}{2}", true)]
    [DataRow("The value is $\\boxed{e^2}$.", "7.389", false)]
    [DataRow("The day is $\\boxed{\\text{Monday}}$.", "\\text{Monday}", true)]
    [DataRow("The answer is $\\boxed{1,024}$.", "2^{10}", true)]
    public void AgreesWithTheReferenceGrader(string response, string reference, bool expected)
        => Assert.AreEqual(expected, AnswerEquivalence.IsCorrect(response, reference), $"{response} vs {reference}");
}
