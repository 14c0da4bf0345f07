using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Tests.Modeling;
using Microsoft.ML.StepDpo.Tests.Sampling;

namespace Microsoft.ML.StepDpo.Tests.Pipeline;

/// <summary>
/// A problem too long for the policy's context is skipped and counted, not the end of the run (with an option to fail
/// instead), and it does not take the problems it shares a generation batch with down with it.
/// </summary>
[TestClass]
public sealed class BeyondContextTests
{
    private sealed class ProblemRow
    {
        public string Problem { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    private const int Context = 128;
    private static readonly string LongProblem = "Tom counts " + string.Join(", ", Enumerable.Range(1, 60)) + ". How many numbers?";

    private static IDataView Problems(MLContext ml) => ml.Data.LoadFromEnumerable(new[]
    {
        new ProblemRow { Problem = "Tom has 7 bags of 4 apples.", Answer = "28" },
        new ProblemRow { Problem = LongProblem, Answer = "60" },
        new ProblemRow { Problem = "Ann has 7 boxes of 4 pens.", Answer = "28" },
    });

    private static StepPreferenceOptions Options(ICompletionSource policy, string dir, string name) => new()
    {
        Policy = policy,
        OutputPath = Path.Combine(dir, name + ".jsonl"),
        SamplesPerProblem = 4,
        RectificationSamples = 2,
        RolloutsPerPrefix = 2,
        MaxConcurrency = 3, // the three problems' requests share batches
        Sampling = new SamplingSettings { MaxNewTokens = 12 },
    };

    [TestMethod]
    public async Task AProblemBeyondTheContextIsSkippedAndCountedAndOthersAreBuilt()
    {
        SingleThread.Enter();
        string dir = Directory.CreateTempSubdirectory("stepprefs-context-").FullName;
        try
        {
            // A real Qwen2 with a 128-token context that answers " 7*4=28." after "Step 1:".
            var (model, tokenizer) = BigramModel.Create(BigramModel.Chain(':', " 7*4=28."), context: Context);
            Assert.IsGreaterThan(Context, tokenizer.Encode(BigramModel.Template.Build(LongProblem, "")).Length, "the long problem does not fit");
            using var source = new LocalModelCompletionSource(model, tokenizer, BigramModel.Template, maxBatchRows: 32, ownsModel: true);
            var ml = new MLContext(seed: 1);

            var options = Options(source, dir, "pairs");
            var report = await ml.StepDpo().BuildStepPreferencesAsync(Problems(ml), options);
            Assert.AreEqual(3, report.Problems, report.ToString());
            Assert.AreEqual(1L, report.BeyondContext, report.ToString());
            Assert.AreEqual(2L * 4, report.Sampled, "the two short problems are sampled in full: " + report);
            Assert.HasCount(3, File.ReadAllLines(options.OutputPath + ".progress.jsonl"));

            // Resumed: nothing is redone, and the count is kept.
            var again = await ml.StepDpo().BuildStepPreferencesAsync(Problems(ml), options);
            Assert.AreEqual(3, again.Resumed);
            Assert.AreEqual(1L, again.BeyondContext);

            // FailBeyondContext: the run stops at that problem, naming it and the context.
            var strict = Options(source, dir, "strict");
            strict.FailBeyondContext = true;
            var e = await Assert.ThrowsExactlyAsync<ContextLengthExceededException>(() => ml.StepDpo().BuildStepPreferencesAsync(Problems(ml), strict));
            StringAssert.Contains(e.Message, "Tom counts 1, 2, 3");
            StringAssert.Contains(e.Message, $"context (max_position_embeddings) is {Context}");
            Assert.IsFalse(e.Message.Contains('\n'), e.Message);
        }
        finally
        {
            SingleThread.Exit();
            Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    public async Task ARequestBeyondTheContextFailsAloneNotItsBatch()
    {
        SingleThread.Enter();
        try
        {
            var (model, tokenizer) = BigramModel.Create(BigramModel.Chain(':', " 7*4=28."), context: Context);
            using var source = new LocalModelCompletionSource(model, tokenizer, BigramModel.Template, maxBatchRows: 32, ownsModel: true);
            var settings = new SamplingSettings { MaxNewTokens = 12 };
            var shortOne = source.CompleteAsync(new CompletionRequest("Tom has 7 bags of 4 apples.", "Step 1:", 2, settings));
            var longOne = source.CompleteAsync(new CompletionRequest(LongProblem, "Step 1:", 2, settings));
            var e = await Assert.ThrowsExactlyAsync<ContextLengthExceededException>(() => longOne);
            Assert.AreEqual(Context, e.ContextLength);
            Assert.IsGreaterThan(Context, e.PromptTokens);
            CollectionAssert.AreEqual(new[] { " 7*4=28.", " 7*4=28." }, (await shortOne).ToArray());
        }
        finally
        {
            SingleThread.Exit();
        }
    }
}
