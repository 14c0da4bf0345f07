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
            AssertPlainLog(output);
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
            // The trained policies as Hugging Face folders, next to the zip.
            foreach (var model in new[] { "step-dpo-model", "dpo-model" })
                Assert.IsTrue(File.Exists(Path.Combine(dir, model, "config.json")) && File.Exists(Path.Combine(dir, model, "model.safetensors")), model);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Output redirected to a file (as here) reads as a log: no escape codes, no line printed twice, no wrapping at 80 columns.</summary>
    private static void AssertPlainLog(string output)
    {
        Assert.IsFalse(output.Contains('\u001b'), "ANSI escape sequences in redirected output:\n" + output);
        var lines = output.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Trim().Length > 0).ToList();
        var repeated = lines.GroupBy(l => l, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.IsEmpty(repeated, "repeated lines:\n" + string.Join("\n", repeated));
        // Each stage starts with one line, and its summary is one line however long.
        foreach (var stage in new[] { "b. step pairs (16 problems) …", "c. Step-DPO (", "d. DPO (", "e. evaluate sft (greedy, 24 held-out) …" })
            Assert.IsTrue(lines.Any(l => l.StartsWith(stage, StringComparison.Ordinal)), $"no line starts with '{stage}':\n{output}");
        var summary = lines.Single(l => l.StartsWith("b. step pairs: 16 problems", StringComparison.Ordinal));
        StringAssert.Contains(summary, "of each used");
        Assert.IsGreaterThan(80, summary.Length);
    }
}
