using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Tests.Modeling;
using Microsoft.ML.StepDpo.Tests.Text;

namespace Microsoft.ML.StepDpo.Tests.Tasks;

/// <summary>The committed SFT checkpoint (src/Samples/Assets/sft-arithmetic) and the demo that starts from it.</summary>
[TestClass]
public sealed class DemoSftAssetTests
{
    private static string AssetDirectory => Path.Combine(Path.GetDirectoryName(FreshProcess.SamplesDll)!, "Assets", "sft-arithmetic");

    [TestMethod]
    public void CommittedCheckpointLoadsAndSolvesHeldOutProblems()
    {
        SingleThread.Enter();
        try
        {
            var (model, tokenizer) = ArithmeticSftRecipe.Load(AssetDirectory);
            using (model)
            {
                Assert.AreEqual(tokenizer.VocabularySize, model.Config.VocabSize);
                Assert.AreEqual(tokenizer.EosId, model.Config.EosTokenId);
                CollectionAssert.AreEqual(ArithmeticSftRecipe.CreateTokenizer().Encode("Mia has 12 books.\nStep 1: 12+3=15."),
                    tokenizer.Encode("Mia has 12 books.\nStep 1: 12+3=15."), "the committed tokenizer is the recipe's");
                // A floor far below the measured accuracy (docs/demo.md), to catch a broken checkpoint or prompt.
                var r = GreedyAccuracy.Evaluate(model, tokenizer, ArithmeticSftRecipe.Prompt,
                    ArithmeticSftRecipe.HeldOut(ArithmeticSftRecipe.DemoTask, 64, seed: 77), maxNewTokens: 160);
                Assert.IsGreaterThan(0.15, r.Metrics.Accuracy, $"accuracy {r.Metrics.Accuracy:P1}");
                Assert.IsTrue(r.Solutions.All(x => x.Solution.Contains("The answer is", StringComparison.Ordinal)), "every solution ends with an answer line");
            }
        }
        finally
        {
            SingleThread.Exit();
        }
    }

    [TestMethod]
    public void DemoRunsEveryStageAndWritesItsOutputs()
    {
        string dir = Directory.CreateTempSubdirectory("stepdpo-demo-").FullName;
        try
        {
            // The whole method at toy size in a fresh process: 16 training problems, 24 held-out problems.
            var (code, output) = FreshProcess.RunSamples("demo", "--quick", "--problems", "16", "--heldout", "24", "--output", dir);
            Assert.AreEqual(0, code, output);
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "results.json")))!;
            Assert.AreEqual(1, json["seeds"]![0]!.GetValue<int>());
            int pairs = json["pairs"]!.GetValue<int>();
            Assert.IsGreaterThan(0, pairs, output);
            Assert.IsEmpty(json["stages_not_available"]!.AsArray());
            foreach (var method in new[] { "sft", "dpo", "step_dpo" })
            {
                var m = json["methods"]![method]!;
                double acc = m["accuracy"]!.GetValue<double>(), lo = m["ci95"]![0]!.GetValue<double>(), hi = m["ci95"]![1]!.GetValue<double>();
                Assert.IsTrue(0 <= lo && lo <= acc && acc <= hi && hi <= 1, $"{method}: {lo} {acc} {hi}");
            }
            foreach (var key in new[] { "pairs", "step_dpo", "dpo", "evaluation", "total" })
                Assert.IsNotNull(json["seconds"]![key], key);
            // The artifacts the issue lists: the Step-DPO model as an ML.NET zip, the pairs, the metrics, the chart.
            Assert.IsTrue(File.Exists(Path.Combine(dir, "step-dpo.zip")));
            Assert.IsTrue(File.Exists(Path.Combine(dir, "demo.png")));
            Assert.IsTrue(File.Exists(Path.Combine(dir, "step-dpo-metrics-seed1.jsonl")));
            var pairRows = File.ReadAllLines(Path.Combine(dir, "pairs", "step-pairs-seed1.jsonl"));
            Assert.IsGreaterThanOrEqualTo(pairs, pairRows.Length);
            var png = File.ReadAllBytes(Path.Combine(dir, "demo.png"));
            CollectionAssert.AreEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
