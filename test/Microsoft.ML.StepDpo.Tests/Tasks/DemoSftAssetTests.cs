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
                // A floor far below the measured accuracy (docs/readme-demo.md), to catch a broken checkpoint or prompt.
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
    public void DemoWritesResultsJsonAndSaysWhichStagesAreMissing()
    {
        string dir = Directory.CreateTempSubdirectory("stepdpo-demo-").FullName;
        try
        {
            var (code, output) = FreshProcess.RunSamples("demo", "--heldout", "24", "--output", dir);
            Assert.AreEqual(0, code, output);
            Assert.Contains("not available yet", output);
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "results.json")))!;
            Assert.AreEqual(1, json["seeds"]![0]!.GetValue<int>());
            var sft = json["methods"]!["sft"]!;
            double acc = sft["accuracy"]!.GetValue<double>(), lo = sft["ci95"]![0]!.GetValue<double>(), hi = sft["ci95"]![1]!.GetValue<double>();
            Assert.IsTrue(0 <= lo && lo <= acc && acc <= hi && hi <= 1, $"{lo} {acc} {hi}");
            Assert.IsNull(json["methods"]!["step_dpo"], "no Step-DPO result may be reported before the stage exists");
            Assert.AreEqual(0, json["pairs"]!.GetValue<int>());
            Assert.IsNotNull(json["seconds"]!["evaluation"]);
            Assert.AreEqual(3, json["stages_not_available"]!.AsArray().Count);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
