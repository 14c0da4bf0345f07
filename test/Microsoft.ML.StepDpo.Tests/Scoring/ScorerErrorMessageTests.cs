using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;
using Microsoft.ML.StepDpo.Tests.Training;

namespace Microsoft.ML.StepDpo.Tests.Scoring;

/// <summary>
/// A loaded LoRA scorer whose base folder is gone fails with the library's own message, not ML.NET's cursor wrapper
/// ("Splitter/consolidator worker encountered exception…") around it.
/// </summary>
[TestClass]
public sealed class ScorerErrorMessageTests
{
    [TestMethod]
    public void SavingTheScoresOfAScorerWhoseBaseIsGoneNamesTheFolder()
    {
        var ml = new MLContext(seed: 1);
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 32);
        string dir = Directory.CreateTempSubdirectory("stepdpo-lora-gone-").FullName;
        try
        {
            string baseDir = Path.Combine(dir, "base");
            using (var model = Qwen2ForCausalLM.CreateRandom(config, seed: 5)) ModelCheckpoint.Save(model, baseDir);
            tok.Save(baseDir);
            var options = new StepDpoTrainer.Options
            {
                Template = new PromptTemplate("task", "Q: {instruction}\nA:", " "), Beta = 0.4, Epochs = 1, BatchSize = 1, Seed = 1,
                MaxLength = 128, MaxPromptLength = 100, UseLora = true, Lora = new LoraSettings { Rank = 2, Alpha = 4, Dropout = 0 },
                BaseModelPath = baseDir,
            };
            var pairs = new[] { new StepDpoTrainerTests.PairRow { prompt = "1+1", initial_reason_steps = "Step 1:", chosen = " 2.", rejected = " 3." } };
            var scorer = ml.StepDpo().Trainers.StepDpo(options).Fit(ml.Data.LoadFromEnumerable(pairs));
            string zip = Path.Combine(dir, "scorer.zip");
            ml.Model.Save(scorer, null, zip);
            Directory.Delete(baseDir, true);

            StepScoringMapping.ClearCache();
            var fresh = new MLContext(seed: 2);
            var loaded = fresh.Model.Load(zip, out _);
            var rows = Enumerable.Range(0, 64).Select(i => new StepDpoTrainerTests.ScoreInput { prompt = $"{i}+1", solution = $"Step 1: {i}+1={i + 1}." }).ToArray();
            var scored = loaded.Transform(fresh.Data.LoadFromEnumerable(rows));
            var e = Assert.Throws<FileNotFoundException>(() => fresh.Data.SaveAsJsonl(scored, Path.Combine(dir, "scores.jsonl")));
            StringAssert.Contains(e.Message, baseDir);
            StringAssert.Contains(e.Message, "is missing");
            Assert.IsFalse(File.Exists(Path.Combine(dir, "scores.jsonl")));
        }
        finally
        {
            StepScoringMapping.ClearCache();
            Directory.Delete(dir, true);
        }
    }
}
