using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Tests.Modeling;
using Microsoft.ML.StepDpo.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Answers;

[TestClass]
public sealed class GreedyAccuracyTests
{
    [ClassInitialize]
    public static void ClassInit(TestContext _) => SingleThread.Enter();

    [ClassCleanup]
    public static void ClassDone() => SingleThread.Exit();

    private static readonly Microsoft.ML.StepDpo.Modeling.Tokenization.ByteLevelBpeTokenizer Tokenizer = ArithmeticSftRecipe.CreateTokenizer();

    // fp64 so that padding in a batch cannot flip an argmax near-tie.
    private static Qwen2ForCausalLM NewModel() =>
        Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: Tokenizer.VocabularySize, hidden: 32), ScalarType.Float64, seed: 5, std: 0.3);

    private static IReadOnlyList<EvaluationProblem> Problems(int n) => ArithmeticSftRecipe.HeldOut(ArithmeticTaskOptions.Easy, n, seed: 3);

    [TestMethod]
    public void CountsIntervalAndSolutionsHaveTheRightShape()
    {
        using var model = NewModel();
        var problems = Problems(9);
        var r = GreedyAccuracy.Evaluate(model, Tokenizer, ArithmeticSftRecipe.Prompt, problems, batchSize: 4, maxNewTokens: 12);
        Assert.AreEqual(9L, r.Metrics.Count);
        Assert.HasCount(9, r.Solutions);
        Assert.AreEqual(r.Solutions.Count(s => s.Correct), r.Metrics.Correct);
        Assert.IsTrue(r.Metrics.ConfidenceLower <= r.Metrics.Accuracy && r.Metrics.Accuracy <= r.Metrics.ConfidenceUpper);
        Assert.IsTrue(r.Metrics.ConfidenceLower >= 0 && r.Metrics.ConfidenceUpper <= 1 && r.Metrics.ConfidenceUpper > r.Metrics.ConfidenceLower);
        for (int i = 0; i < 9; i++)
        {
            Assert.AreEqual(problems[i].Question, r.Solutions[i].Question, "solutions keep the order of the problems");
            Assert.StartsWith(PromptTemplate.StepPreamble, r.Solutions[i].Solution);
            Assert.IsLessThanOrEqualTo(PromptTemplate.StepPreamble.Length + 12, r.Solutions[i].Solution.Length);
        }
    }

    [TestMethod]
    public void GradesAgainstTheReferenceAnswers()
    {
        using var model = NewModel();
        var problems = Problems(8);
        var first = GreedyAccuracy.Evaluate(model, Tokenizer, ArithmeticSftRecipe.Prompt, problems, batchSize: 8, maxNewTokens: 12);
        // Make the reference equal to what the model answered on even rows, and different on odd rows.
        var rigged = problems.Select((p, i) =>
        {
            string got = first.Solutions[i].Extracted;
            Assert.AreNotEqual("", got, "the forced opening \"Step 1: \" always leaves a number to extract");
            return p with { Reference = i % 2 == 0 ? got : got + "7" };
        }).ToList();
        var r = GreedyAccuracy.Evaluate(model, Tokenizer, ArithmeticSftRecipe.Prompt, rigged, batchSize: 8, maxNewTokens: 12);
        Assert.AreEqual(4L, r.Metrics.Correct);
        Assert.AreEqual(0.5, r.Metrics.Accuracy, 1e-12);
        CollectionAssert.AreEqual(new[] { true, false, true, false, true, false, true, false }, r.Solutions.Select(s => s.Correct).ToArray());
    }

    [TestMethod]
    public void IsDeterministicAndIndependentOfTheBatchSize()
    {
        using var model = NewModel();
        var problems = Problems(7);
        var a = GreedyAccuracy.Evaluate(model, Tokenizer, ArithmeticSftRecipe.Prompt, problems, batchSize: 7, maxNewTokens: 16);
        var b = GreedyAccuracy.Evaluate(model, Tokenizer, ArithmeticSftRecipe.Prompt, problems, batchSize: 7, maxNewTokens: 16);
        var c = GreedyAccuracy.Evaluate(model, Tokenizer, ArithmeticSftRecipe.Prompt, problems, batchSize: 2, maxNewTokens: 16);
        CollectionAssert.AreEqual(a.Solutions.Select(s => s.Solution).ToArray(), b.Solutions.Select(s => s.Solution).ToArray());
        CollectionAssert.AreEqual(a.Solutions.Select(s => s.Solution).ToArray(), c.Solutions.Select(s => s.Solution).ToArray());
    }

    [TestMethod]
    [DataRow(ScalarType.Float64, DisplayName = "float64: libtorch's ops")]
    [DataRow(ScalarType.Float32, DisplayName = "float32: the fused decoder where the CPU has AVX-512")]
    public void EachSolutionIsWhatThePlainGeneratorGivesItsPromptAlone(ScalarType dtype)
    {
        // Continuous batching (a finished problem's row taken by the next) against one prompt at a time.
        using var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: Tokenizer.VocabularySize, hidden: 32), dtype, seed: 6, std: 0.3);
        var problems = Problems(11);
        var reports = new List<int>();
        var r = GreedyAccuracy.Evaluate(model, Tokenizer, ArithmeticSftRecipe.Prompt, problems, batchSize: 3, maxNewTokens: 20, progress: new InlineProgress(reports.Add));
        var plain = new TextGenerator(model, ids => Tokenizer.Decode(ids));
        var eos = new[] { Tokenizer.EosId, model.Config.EosTokenId }.OfType<int>().Distinct().ToArray();
        for (int i = 0; i < problems.Count; i++)
        {
            var alone = plain.Generate(Tokenizer.Encode(ArithmeticSftRecipe.Prompt.BuildForEvaluation(problems[i].Question)), new GenerationOptions { MaxNewTokens = 20, EosIds = eos });
            Assert.AreEqual(PromptTemplate.StepPreamble + alone.Text, r.Solutions[i].Solution, $"problem {i}");
        }
        Assert.AreEqual(11, reports[^1], "the last report counts every problem");
        CollectionAssert.AreEqual(reports.OrderBy(x => x).ToArray(), reports.ToArray(), "reports only grow");
    }

    private sealed class InlineProgress(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }

    [TestMethod]
    public void GoldSolutionsGradeCorrectAndAWrongFinalAnswerDoesNot()
    {
        foreach (var p in ArithmeticTask.Generate(ArithmeticSftRecipe.DemoTask, 100, 4, TaskSplit.HeldOut))
        {
            string reference = p.Answer.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Assert.AreEqual((reference, true), GreedyAccuracy.Grade(p.Solution, reference), p.Solution);
            string wrong = p.Solution[..p.Solution.LastIndexOf(' ')] + " " + (p.Answer + 1) + ".";
            Assert.IsFalse(GreedyAccuracy.Grade(wrong, reference).Correct, wrong);
        }
    }

    [TestMethod]
    public void RejectsBadArguments()
    {
        using var model = NewModel();
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => GreedyAccuracy.Evaluate(model, Tokenizer, ArithmeticSftRecipe.Prompt, Problems(1), batchSize: 0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => GreedyAccuracy.Evaluate(model, Tokenizer, ArithmeticSftRecipe.Prompt, Problems(1), maxNewTokens: 0));
        Assert.AreEqual(0L, GreedyAccuracy.Evaluate(model, Tokenizer, ArithmeticSftRecipe.Prompt, Array.Empty<EvaluationProblem>()).Metrics.Count);
    }
}
