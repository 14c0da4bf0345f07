using Microsoft.ML.StepDpo.Answers;

namespace Microsoft.ML.StepDpo.Tests.Answers;

[TestClass]
public sealed class AnswerExtractorTests
{
    [TestMethod]
    [DataRow("So the final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}")]
    [DataRow("We get $\\boxed{5}$ first, then correct it: $\\boxed{\\frac{1}{\\sqrt{2}}}$.", "\\frac{1}{\\sqrt{2}}")]
    [DataRow("Thus \\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}")]
    [DataRow("Step 1: 2+2=4.\nStep 2: 4*3=12.\nThe answer is: 12", "12")]
    [DataRow("The answer is 7. Wait, the answer is $8$.", "8")]
    [DataRow("She pays 3 + 4 = 7 dollars, so 1,250 in total.", "1250")]
    [DataRow("no number here", "")]
    [DataRow("", "")]
    [DataRow("```python\nprint(2+3)\n```\n```output\n5\n```", "5")]
    [DataRow("So x = \\boxed 7$ done", "7")]
    [DataRow("unbalanced \\boxed{3+{4}", "3+{4}")]
    public void ExtractsInReferenceOrder(string solution, string expected)
        => Assert.AreEqual(expected, AnswerExtractor.Extract(solution));

    [TestMethod]
    public void LastBoxedIsBraceMatched()
    {
        Assert.AreEqual("\\frac{a}{b}", AnswerExtractor.LastBoxed("x \\boxed{1} y \\boxed{\\frac{a}{b}}."));
        Assert.IsNull(AnswerExtractor.LastBoxed("nothing"));
    }

    [TestMethod]
    public void Gsm8kGoldAnswer()
        => Assert.AreEqual("1250", Microsoft.ML.StepDpo.Data.JsonlFormats.Gsm8kFinalAnswer("She pays 1,000 + 250.\n#### 1,250"));
}
