using System.Globalization;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Tests.Modeling;
using Microsoft.ML.StepDpo.Tests.Text;
using Microsoft.ML.StepDpo.Text;
using TorchSharp;

namespace Microsoft.ML.StepDpo.Tests.Pipeline;

/// <summary>
/// The pair files the pipeline writes from the local model are the same bytes whatever the concurrency and the batch
/// size: on the demo's committed SFT model (in float64, so batch shapes cannot change a rounding), its own samples,
/// rollouts and rectifications.
/// </summary>
[TestClass]
public sealed class ReproduciblePairsTests
{
    private static string AssetDirectory => Path.Combine(Path.GetDirectoryName(FreshProcess.SamplesDll)!, "Assets", "sft-arithmetic");

    private sealed class Row
    {
        public string Problem { get; set; } = "";
        public string Answer { get; set; } = "";
        public string Id { get; set; } = "";
    }

    private string _dir = "";

    [TestInitialize]
    public void Init() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), $"repro-pairs-{Guid.NewGuid():N}"));

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, recursive: true);

    private (byte[] Steps, byte[] Answers, StepPreferenceReport Report) Build(Qwen2ForCausalLM model, ITextTokenizer tokenizer, int concurrency, int maxBatchRows, string name)
    {
        var problems = ArithmeticTask.Generate(ArithmeticTaskOptions.Demo, 6, seed: 1001, TaskSplit.Train);
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(problems.Select(p => new Row { Problem = p.Question, Answer = p.Answer.ToString(CultureInfo.InvariantCulture), Id = p.Id }));
        using var policy = new LocalModelCompletionSource(model, tokenizer, PromptTemplate.Plain, maxBatchRows);
        var options = new StepPreferenceOptions
        {
            Policy = policy, IdColumnName = "Id", SamplesPerProblem = 4, RolloutsPerPrefix = 3, RectificationSamples = 4,
            Sampling = new SamplingSettings { Temperature = 0.8, TopP = 0.95, MaxNewTokens = 160, Seed = 3 },
            MaxConcurrency = concurrency, OutputPath = Path.Combine(_dir, name + ".jsonl"), AnswerPairsPath = Path.Combine(_dir, name + ".answers.jsonl"), Seed = 3,
        };
        var report = ml.StepDpo().BuildStepPreferences(data, options);
        return (File.ReadAllBytes(options.OutputPath), File.ReadAllBytes(options.AnswerPairsPath), report);
    }

    [TestMethod]
    public void PairFilesAreTheSameForAnyConcurrencyAndBatchSize()
    {
        SingleThread.Enter();
        try
        {
            var (model, tokenizer) = ModelFolder.Load(AssetDirectory, torch.ScalarType.Float64);
            using var _ = model;
            var one = Build(model, tokenizer, concurrency: 1, maxBatchRows: 64, "one");
            var eight = Build(model, tokenizer, concurrency: 8, maxBatchRows: 64, "eight");
            var smallBatches = Build(model, tokenizer, concurrency: 8, maxBatchRows: 5, "small");
            Assert.IsTrue(one.Report.Pairs > 0 && one.Report.AnswerPairs > 0 && one.Report.Located > 0, $"the run has pairs to compare: {one.Report}");
            CollectionAssert.AreEqual(one.Steps, eight.Steps, "step pairs: concurrency 1 vs 8");
            CollectionAssert.AreEqual(one.Answers, eight.Answers, "answer pairs: concurrency 1 vs 8");
            CollectionAssert.AreEqual(one.Steps, smallBatches.Steps, "step pairs: 64-row vs 5-row batches");
            CollectionAssert.AreEqual(one.Answers, smallBatches.Answers, "answer pairs: 64-row vs 5-row batches");
            Assert.AreEqual(one.Report, eight.Report);
        }
        finally
        {
            SingleThread.Exit();
        }
    }
}
