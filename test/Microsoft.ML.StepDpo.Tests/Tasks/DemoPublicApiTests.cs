using Microsoft.Extensions.AI;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Tests.Modeling;
using Microsoft.ML.StepDpo.Tests.Text;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;

namespace Microsoft.ML.StepDpo.Tests.Tasks;

/// <summary>
/// The demo runs on the public, path-based API (model folders); these compare it with the internal in-memory paths it
/// replaced, on the committed SFT checkpoint: the demo's numbers must not depend on which one runs.
/// </summary>
[TestClass]
public sealed class DemoPublicApiTests
{
    private static string AssetDirectory => Path.Combine(Path.GetDirectoryName(FreshProcess.SamplesDll)!, "Assets", "sft-arithmetic");

    private sealed class Row
    {
        public string Problem { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    private static IReadOnlyList<ArithmeticProblem> HeldOut(int count) => ArithmeticTask.Generate(ArithmeticTaskOptions.Demo, count, seed: 1001, TaskSplit.HeldOut);

    private static IDataView AsDataView(MLContext ml, IEnumerable<ArithmeticProblem> problems) =>
        ml.Data.LoadFromEnumerable(problems.Select(p => new Row { Problem = p.Question, Answer = p.Answer.ToString(System.Globalization.CultureInfo.InvariantCulture) }));

    [TestMethod]
    public void DemoTaskPresetIsTheRecipesTask()
    {
        var a = ArithmeticTaskOptions.Demo;
        var b = ArithmeticSftRecipe.DemoTask;
        CollectionAssert.AreEqual(ArithmeticTask.Generate(b, 50, 3, TaskSplit.HeldOut).Select(p => p.Question).ToList(),
            ArithmeticTask.Generate(a, 50, 3, TaskSplit.HeldOut).Select(p => p.Question).ToList());
    }

    [TestMethod]
    public void FolderEvaluationGivesExactlyTheInMemorySolutions()
    {
        SingleThread.Enter();
        try
        {
            var problems = HeldOut(24);
            var ml = new MLContext(1);
            var viaFolder = ml.StepDpo().EvaluateGreedy(AssetDirectory, AsDataView(ml, problems), PromptTemplate.Plain,
                maxNewTokens: 160, batchSize: 64);

            var (model, tokenizer) = ArithmeticSftRecipe.Load(AssetDirectory);
            GreedyEvaluationResult inMemory;
            using (model)
                inMemory = GreedyAccuracy.Evaluate(model, tokenizer, ArithmeticSftRecipe.Prompt, ArithmeticSftRecipe.ForEvaluation(problems),
                    batchSize: 64, maxNewTokens: 160);

            Assert.HasCount(24, viaFolder.Solutions);
            CollectionAssert.AreEqual(inMemory.Solutions.ToList(), viaFolder.Solutions.ToList());
            Assert.AreEqual(inMemory.Metrics.Correct, viaFolder.Metrics.Correct);
            Assert.AreEqual(inMemory.Metrics.ConfidenceLower, viaFolder.Metrics.ConfidenceLower);
            Assert.IsTrue(viaFolder.Solutions.All(s => s.Solution.StartsWith(PromptTemplate.StepPreamble, StringComparison.Ordinal)));
        }
        finally
        {
            SingleThread.Exit();
        }
    }

    [TestMethod]
    public void EvaluationNamesAMissingColumn()
    {
        var ml = new MLContext(1);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.StepDpo().EvaluateGreedy(AssetDirectory, AsDataView(ml, HeldOut(2)), PromptTemplate.Plain, problemColumnName: "question"));
        StringAssert.Contains(ex.Message, "question");
    }

    [TestMethod]
    public async Task ChatClientWithAPlainTemplateContinuesThePromptAsGreedyEvaluationDoes()
    {
        SingleThread.Enter();
        try
        {
            var problems = HeldOut(3);
            var ml = new MLContext(1);
            var expected = ml.StepDpo().EvaluateGreedy(AssetDirectory, AsDataView(ml, problems), PromptTemplate.Plain, maxNewTokens: 160, batchSize: 1);
            using var client = LocalChatClient.Load(AssetDirectory, messages => string.Concat(messages.Select(m => m.Text)), endOfTurn: null);
            for (int i = 0; i < problems.Count; i++)
            {
                var prompt = PromptTemplate.Plain.BuildForEvaluation(problems[i].Question);
                var pieces = new List<string>();
                await foreach (var u in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, prompt)], new ChatOptions { MaxOutputTokens = 160 }))
                    pieces.Add(u.Text);
                Assert.AreEqual(expected.Solutions[i].Solution, PromptTemplate.StepPreamble + string.Concat(pieces), problems[i].Question);
            }
        }
        finally
        {
            SingleThread.Exit();
        }
    }

    private sealed class PairRow
    {
        public string prompt { get; set; } = "";
        public string initial_reason_steps { get; set; } = "";
        public string chosen { get; set; } = "";
        public string rejected { get; set; } = "";
    }

    [TestMethod]
    public void TrainingFromTheFolderEqualsTrainingFromTheLoadedModel()
    {
        SingleThread.Enter();
        string dir = Directory.CreateTempSubdirectory("stepdpo-demo-api-").FullName;
        try
        {
            // Step pairs as the demo builds them: the gold first step against a wrong one, after the shared opening.
            var rows = ArithmeticTask.Generate(ArithmeticTaskOptions.Demo, 8, seed: 5, TaskSplit.Train).Select(p => new PairRow
            {
                prompt = p.Question, initial_reason_steps = "Let's think step by step.\nStep 1:",
                chosen = " " + p.Steps[0], rejected = " " + p.Steps[0].Replace("=", "=1", StringComparison.Ordinal),
            }).ToList();
            StepDpoTrainer.Options Options() => new()
            {
                Template = PromptTemplate.Plain, Beta = 0.4, LearningRate = 2e-5, Epochs = 2, BatchSize = 4, WarmupRatio = 0.1, Seed = 1,
                LogInterval = 1, MaxLength = 512, MaxPromptLength = 384,
            };

            var ml = new MLContext(1);
            var fromFolder = Options();
            fromFolder.BaseModelPath = AssetDirectory;
            ml.StepDpo().Trainers.StepDpo(fromFolder).Fit(ml.Data.LoadFromEnumerable(rows)).SavePolicy(Path.Combine(dir, "folder"));

            var (model, tokenizer) = ArithmeticSftRecipe.Load(AssetDirectory);
            using (model)
            {
                var inMemory = Options();
                inMemory.BaseModel = model;
                inMemory.BaseTokenizer = tokenizer;
                ml = new MLContext(1);
                ml.StepDpo().Trainers.StepDpo(inMemory).Fit(ml.Data.LoadFromEnumerable(rows)).SavePolicy(Path.Combine(dir, "memory"));
            }

            var a = File.ReadAllBytes(Path.Combine(dir, "folder", "model.safetensors"));
            var b = File.ReadAllBytes(Path.Combine(dir, "memory", "model.safetensors"));
            CollectionAssert.AreEqual(b, a, "the trained weights are the same");
            CollectionAssert.AreNotEqual(File.ReadAllBytes(Path.Combine(AssetDirectory, "model.safetensors")), a, "training changed the weights");
        }
        finally
        {
            SingleThread.Exit();
            Directory.Delete(dir, true);
        }
    }
}
