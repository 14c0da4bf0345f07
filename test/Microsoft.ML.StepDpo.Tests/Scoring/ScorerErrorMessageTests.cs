using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Data;
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
    /// <summary>
    /// A user's own cursor, <c>CreateEnumerable</c> or <c>GetColumn</c> over a loaded scorer runs on ML.NET's parallel
    /// cursors, which wrap the library's exception in theirs ("Splitter/consolidator worker encountered exception…"): ML.NET
    /// throws it on the reading thread and offers no hook to change it, so the public <see cref="WrappedErrors.Unwrap"/>
    /// gives back the library's exception; a <c>PredictionEngine</c> throws the library's exception itself.
    /// </summary>
    [TestMethod]
    public void AUsersOwnCursorOverALoadedScorerGetsTheLibrarysErrorFromWrappedErrorsUnwrap()
    {
        Assert.IsTrue(typeof(WrappedErrors).IsPublic, "the helper a user needs is public");
        Assert.IsTrue(typeof(WrappedErrors).GetMethod(nameof(WrappedErrors.Unwrap))!.IsPublic);

        var ml = new MLContext(seed: 1);
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 32) with { MaxPositionEmbeddings = 64 };
        string dir = Directory.CreateTempSubdirectory("stepdpo-own-cursor-").FullName;
        try
        {
            string baseDir = Path.Combine(dir, "base");
            using (var model = Qwen2ForCausalLM.CreateRandom(config, seed: 5)) ModelCheckpoint.Save(model, baseDir);
            tok.Save(baseDir);
            var options = new StepDpoTrainer.Options
            {
                Template = new PromptTemplate("task", "Q: {instruction}\nA:", " "), Beta = 0.4, Epochs = 1, BatchSize = 1, Seed = 1,
                MaxLength = 48, MaxPromptLength = 24, UseLora = true, Lora = new LoraSettings { Rank = 2, Alpha = 4, Dropout = 0 },
                BaseModelPath = baseDir,
            };
            var pairs = new[] { new StepDpoTrainerTests.PairRow { prompt = "1+1", initial_reason_steps = "Step 1:", chosen = " 2.", rejected = " 3." } };
            var scorer = ml.StepDpo().Trainers.StepDpo(options).Fit(ml.Data.LoadFromEnumerable(pairs));
            string zip = Path.Combine(dir, "scorer.zip");
            ml.Model.Save(scorer, null, zip);
            var rows = Enumerable.Range(0, 64).Select(i => new StepDpoTrainerTests.ScoreInput { prompt = $"{i}+1", solution = $"Step 1: {i}+1={i + 1}." }).ToArray();

            // A row-level failure: a solution beyond the 64-token context with FailBeyondContext (the loaded model shares
            // the scorer of this process).
            scorer.FailBeyondContext = true;
            var sameProcess = new MLContext(seed: 2);
            var loaded = sameProcess.Model.Load(zip, out _);
            var longRows = rows.Append(new StepDpoTrainerTests.ScoreInput { prompt = "1+1", solution = string.Concat(Enumerable.Range(1, 20).Select(k => $"Step {k}: 1+1=2.\n")) });
            var scored = loaded.Transform(sameProcess.Data.LoadFromEnumerable(longRows));
            var wrapped = Assert.Throws<Exception>(() => sameProcess.Data.CreateEnumerable<StepDpoTrainerTests.ScoreOutput>(scored, reuseRowObject: false).ToList());
            var cause = WrappedErrors.Unwrap(wrapped);
            Assert.IsInstanceOfType<InvalidOperationException>(cause);
            StringAssert.Contains(cause.Message, "does not fit the model's context of 64 tokens");
            scorer.FailBeyondContext = false;

            // The base folder gone, in a fresh load: the first row fails.
            Directory.Delete(baseDir, true);
            StepScoringMapping.ClearCache();
            var fresh = new MLContext(seed: 3);
            var reloaded = fresh.Model.Load(zip, out _);
            var view = reloaded.Transform(fresh.Data.LoadFromEnumerable(rows));
            void AssertNamesTheFolder(Exception e, string how)
            {
                var library = WrappedErrors.Unwrap(e);
                Assert.IsInstanceOfType<FileNotFoundException>(library, how + ": " + e);
                StringAssert.Contains(library.Message, baseDir, how);
                StringAssert.Contains(library.Message, "is missing", how);
            }
            AssertNamesTheFolder(Assert.Throws<Exception>(() =>
            {
                using var cursor = view.GetRowCursor(view.Schema);
                var total = cursor.GetGetter<float>(view.Schema["TotalReward"]);
                float value = 0;
                while (cursor.MoveNext()) total(ref value);
            }), "own cursor");
            AssertNamesTheFolder(Assert.Throws<Exception>(() => fresh.Data.CreateEnumerable<StepDpoTrainerTests.ScoreOutput>(view, reuseRowObject: false).ToList()), "CreateEnumerable");
            AssertNamesTheFolder(Assert.Throws<Exception>(() => view.GetColumn<float>("TotalReward").ToList()), "GetColumn");
            // SaveAsJsonlPassThrough (JSONL rows with their original JSON) unwraps, as SaveAsJsonl does.
            string jsonl = Path.Combine(dir, "rows.jsonl");
            File.WriteAllLines(jsonl, rows.Select(r => System.Text.Json.JsonSerializer.Serialize(r)));
            var raw = fresh.Data.LoadFromJsonl(jsonl, new[] { new JsonlField("prompt"), new JsonlField("solution") }, new JsonlReadOptions { RawJsonColumnName = "raw" });
            var passThrough = Assert.ThrowsExactly<FileNotFoundException>(() =>
                fresh.Data.SaveAsJsonlPassThrough(reloaded.Transform(raw), Path.Combine(dir, "scored.jsonl"), "raw", "TotalReward"));
            StringAssert.Contains(passThrough.Message, baseDir);
            // A PredictionEngine runs on the caller's thread: the library's exception itself.
            var direct = Assert.ThrowsExactly<FileNotFoundException>(() =>
                fresh.Model.CreatePredictionEngine<StepDpoTrainerTests.ScoreInput, StepDpoTrainerTests.ScoreOutput>(reloaded).Predict(rows[0]));
            StringAssert.Contains(direct.Message, baseDir);
            // Unwrap leaves an exception that is not wrapped as it is.
            Assert.AreSame(direct, WrappedErrors.Unwrap(direct));
        }
        finally
        {
            StepScoringMapping.ClearCache();
            Directory.Delete(dir, true);
        }
    }
}
