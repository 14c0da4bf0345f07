using System.Text.Json;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Verification;

using Microsoft.ML.StepDpo.Tests.Sampling;

namespace Microsoft.ML.StepDpo.Tests.Pipeline;

[TestClass]
public sealed class VerifyChosenTests
{
    private sealed class ProblemRow
    {
        public string Problem { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    // Samples cycle through: a wrong step, a sound correct solution, and a right answer reached by a wrong calculation.
    private static readonly string[] s_samples = { " 3+4=8.\nThe answer is 8.", " 3+4=7.\nThe answer is 7.", " 3+5=7.\nThe answer is 7." };

    private static List<Dictionary<string, string>> Run(bool verifyChosen, string dir)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { new ProblemRow { Problem = "Mia has 3 pens. Mia gets 4 more. How many pens now?", Answer = "7" } });
        var options = new StepPreferenceOptions
        {
            Policy = new ScriptedCompletionSource((_, i) => s_samples[i % 3]),
            Verifiers = new List<IStepVerifier> { new ArithmeticStepVerifier() },
            SamplesPerProblem = 3, RectificationSamples = 6, VerifyChosen = verifyChosen,
            OutputPath = Path.Combine(dir, $"pairs-{verifyChosen}.jsonl"), AnswerPairsPath = Path.Combine(dir, $"answers-{verifyChosen}.jsonl"),
        };
        var report = ml.StepDpo().BuildStepPreferences(data, options);
        Assert.AreEqual(1L, report.Wrong);
        Assert.AreEqual(1L, report.Located);
        var rows = File.ReadAllLines(options.OutputPath).Select(l => JsonSerializer.Deserialize<Dictionary<string, string>>(l)!).ToList();
        var answers = File.ReadAllLines(options.AnswerPairsPath).Select(l => JsonSerializer.Deserialize<Dictionary<string, string>>(l)!).ToList();
        Assert.HasCount(1, answers);
        Assert.AreEqual(" 3+4=7.\nThe answer is 7.", answers[0]["chosen"], "the answer-level chosen is the sound solution");
        return rows;
    }

    [TestMethod]
    public void LuckyContinuationsAreNotChosenSteps()
    {
        var dir = Directory.CreateTempSubdirectory("verify-chosen-").FullName;
        try
        {
            var strict = Run(verifyChosen: true, dir);
            // A one-step solution: the step carries the answer line (it is the last step).
            CollectionAssert.AreEqual(new[] { " 3+4=7.\nThe answer is 7." }, strict.Select(r => r["chosen"]).ToArray());
            Assert.AreEqual(" 3+4=8.\nThe answer is 8.", strict[0]["rejected"]);

            // Without the check the paper's rule (right final answer) also keeps the lucky step.
            var loose = Run(verifyChosen: false, dir);
            CollectionAssert.AreEquivalent(new[] { " 3+4=7.\nThe answer is 7.", " 3+5=7.\nThe answer is 7." }, loose.Select(r => r["chosen"]).ToArray());
        }
        finally { Directory.Delete(dir, true); }
    }
}
