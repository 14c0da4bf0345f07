using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Tests.Text;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;

namespace Microsoft.ML.StepDpo.Tests.Training;

[TestClass]
public sealed class SftTrainerTests
{
    public sealed class Row
    {
        public string prompt { get; set; } = "";
        public string response { get; set; } = "";
    }

    public sealed class Generated
    {
        public string GeneratedText { get; set; } = "";
    }

    private static readonly Row[] s_rows =
    {
        new() { prompt = "2+3", response = "5" }, new() { prompt = "4+4", response = "8" },
        new() { prompt = "1+6", response = "7" }, new() { prompt = "3+3", response = "6" },
    };

    [TestMethod]
    public void SftLearnsTheResponsesAndTheModelSavesAndLoadsInAFreshProcess()
    {
        var ml = new MLContext(seed: 1);
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64), seed: 2);
        var options = new SftTrainer.Options
        {
            BaseModel = model, BaseTokenizer = tok, Template = new PromptTemplate("qa", "Q: {instruction}\nA:", " "),
            LearningRate = 1e-2, Epochs = 60, BatchSize = 4, WarmupRatio = 0, Seed = 1, MaxNewTokens = 4, LogInterval = 20,
        };
        var trainer = ml.StepDpo().Trainers.Sft(options);
        var fitted = trainer.Fit(ml.Data.LoadFromEnumerable(s_rows));
        var history = trainer.LastReport!.History;
        Assert.IsLessThan(history[0]["loss"] / 10, history[^1]["loss"]);
        Assert.AreEqual(4, trainer.LastReport.ExamplesUsed);
        Assert.AreEqual(60, trainer.LastReport.OptimizerSteps);
        Assert.HasCount(3, history, "one record every 20 steps");

        var engine = ml.Model.CreatePredictionEngine<Row, Generated>(fitted);
        foreach (var r in s_rows)
            Assert.AreEqual(r.response, engine.Predict(r).GeneratedText, $"prompt {r.prompt}");

        var dir = Directory.CreateTempSubdirectory("stepdpo-sft-").FullName;
        try
        {
            var data = ml.Data.LoadFromEnumerable(s_rows);
            var zip = Path.Combine(dir, "sft.zip");
            ml.Model.Save(fitted, data.Schema, zip);
            var jsonl = Path.Combine(dir, "in.jsonl");
            File.WriteAllLines(jsonl, s_rows.Select(r => new JsonObject { ["prompt"] = r.prompt, ["response"] = r.response }.ToJsonString()));
            var outPath = Path.Combine(dir, "out.jsonl");
            var (code, output) = FreshProcess.RunTestHost("apply-model", "--model", zip, "--input", jsonl, "--fields", "prompt", "response", "--output", outPath);
            Assert.AreEqual(0, code, output);
            var lines = File.ReadAllLines(outPath);
            for (int i = 0; i < s_rows.Length; i++)
                Assert.AreEqual(s_rows[i].response, JsonNode.Parse(lines[i])!["GeneratedText"]!.GetValue<string>());

            // The trained model also saves as a Hugging Face folder that loads back with the same weights.
            fitted.SaveModel(Path.Combine(dir, "hf"));
            using var reloaded = ModelCheckpoint.Load(Path.Combine(dir, "hf"));
            Assert.AreEqual(fitted.Model.parameters().Sum(p => p.numel()), reloaded.parameters().Sum(p => p.numel()));
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void MissingResponseColumnFailsLikeMLNet()
    {
        var ml = new MLContext(seed: 1);
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: tok.VocabularySize), seed: 2);
        var trainer = ml.StepDpo().Trainers.Sft(new SftTrainer.Options { BaseModel = model, BaseTokenizer = tok });
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(ml.Data.LoadFromEnumerable(new[] { new { prompt = "p" } })));
        StringAssert.Contains(e.Message, "Could not find input column 'response'");
    }
}
