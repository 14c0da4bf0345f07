using System.Text.Json.Nodes;
using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Tests.Text;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;
using TorchSharp;

namespace Microsoft.ML.StepDpo.Tests.Training;

[TestClass]
public sealed class StepDpoTrainerTests
{
    private static readonly PromptTemplate Template = new("task", "Q: {instruction}\nA:", " ");

    public sealed class PairRow
    {
        public string prompt { get; set; } = "";
        public string initial_reason_steps { get; set; } = "";
        public string chosen { get; set; } = "";
        public string rejected { get; set; } = "";
    }

    public sealed class ScoreInput
    {
        public string prompt { get; set; } = "";
        public string solution { get; set; } = "";
    }

    public sealed class ScoreOutput
    {
        public float[] StepRewards { get; set; } = Array.Empty<float>();
        public float TotalReward { get; set; }
        public int FirstErrorStep { get; set; }
        public int StepCount { get; set; }
    }

    private static PairRow[] Pairs() => new[]
    {
        new PairRow { prompt = "Mia has 3 pens. Mia gets 4 more.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 3+4=7.", rejected = " 3+4=8." },
        new PairRow { prompt = "Ben has 5 cards. Ben loses 2.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 5-2=3.", rejected = " 5-2=4." },
        new PairRow { prompt = "Ava has 2 boxes of 6.", initial_reason_steps = "Let's think step by step.\nStep 1: 2*6=12.\nStep 2:", chosen = " 12+1=13.", rejected = " 12+1=14." },
        new PairRow { prompt = "Sam has 9 coins. Sam sells 4.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 9-4=5.", rejected = " 9-4=6." },
        new PairRow { prompt = "Leo has 7 shells.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 7+1=8.", rejected = "" }, // empty rejected: dropped, counted
    };

    private static (Qwen2ForCausalLM, ByteLevelBpeTokenizer) TinyModel()
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64);
        return (Qwen2ForCausalLM.CreateRandom(config, seed: 3), tok);
    }

    private static StepDpoTrainer.Options Options(Qwen2ForCausalLM model, ByteLevelBpeTokenizer tok) => new()
    {
        BaseModel = model, BaseTokenizer = tok, Template = Template, Beta = 0.4, LearningRate = 5e-3, Epochs = 8, BatchSize = 4,
        WarmupRatio = 0, Seed = 1, LogInterval = 1, MaxLength = 256, MaxPromptLength = 200,
    };

    [TestMethod]
    public void TrainingPrefersChosenStepsAndTheScorerSeesIt()
    {
        var ml = new MLContext(seed: 1);
        var (model, tok) = TinyModel();
        var data = ml.Data.LoadFromEnumerable(Pairs());
        var trainer = ml.StepDpo().Trainers.StepDpo(Options(model, tok));
        var scorer = trainer.Fit(data);

        var report = trainer.LastReport!;
        Assert.AreEqual(5, report.Rows);
        Assert.AreEqual(4, report.ExamplesUsed);
        Assert.AreEqual(1, report.SkippedEmpty);
        Assert.AreEqual(1, report.ExamplesSkipped);
        Assert.AreEqual(8, report.OptimizerSteps, "4 pairs in one batch of 4, 8 epochs");
        Assert.HasCount(8, report.History, "one record per step (LogInterval 1)");
        Assert.IsGreaterThan(0.0, report.History[^1]["rewards/margins"]);
        Assert.AreEqual(1.0, report.History[^1]["rewards/accuracies"], 1e-9);

        // The implicit reward of a trained chosen step is above that of its rejected step, in context.
        var engine = ml.Model.CreatePredictionEngine<ScoreInput, ScoreOutput>(scorer);
        var good = engine.Predict(new() { prompt = "Mia has 3 pens. Mia gets 4 more.", solution = "Let's think step by step.\nStep 1: 3+4=7.\nThe answer is 7." });
        var bad = engine.Predict(new() { prompt = "Mia has 3 pens. Mia gets 4 more.", solution = "Let's think step by step.\nStep 1: 3+4=8.\nThe answer is 8." });
        Assert.AreEqual(1, good.StepCount);
        Assert.HasCount(1, good.StepRewards);
        Assert.IsGreaterThan(bad.StepRewards[0], good.StepRewards[0]);
        Assert.AreEqual(good.StepRewards.Sum(), good.TotalReward, 1e-5);

        // As a verifier: with the threshold between the two rewards, only the wrong step is flagged.
        var verifier = new Microsoft.ML.StepDpo.Verification.ModelStepVerifier(scorer, threshold: (good.StepRewards[0] + bad.StepRewards[0]) / 2);
        var wrong = verifier.VerifyAsync(new("Mia has 3 pens. Mia gets 4 more.", new[] { "3+4=8.\nThe answer is 8." }, "7", null)).Result;
        var right = verifier.VerifyAsync(new("Mia has 3 pens. Mia gets 4 more.", new[] { "3+4=7.\nThe answer is 7." }, "7", null)).Result;
        Assert.AreEqual(Microsoft.ML.StepDpo.Verification.StepVerdict.Incorrect, wrong[0].Verdict);
        Assert.AreEqual(Microsoft.ML.StepDpo.Verification.StepVerdict.Unknown, right[0].Verdict);
    }

    [TestMethod]
    public void ScorerRewardsEqualTheDefinitionComputedStepByStep()
    {
        var ml = new MLContext(seed: 1);
        var (model, tok) = TinyModel();
        var o = Options(model, tok); o.Epochs = 2;
        var scorer = ml.StepDpo().Trainers.StepDpo(o).Fit(ml.Data.LoadFromEnumerable(Pairs()));
        string prompt = "Ava has 2 boxes of 6.", solution = "Let's think step by step.\nStep 1: 2*6=12.\nStep 2: 12+1=13.\nThe answer is 13.";
        var scores = scorer.Scorer.Score(prompt, solution);
        Assert.AreEqual(2, scores.Rewards.Length);

        // Plain path: each step on its own sequence, context ending with "Step k:", policy and reference separately.
        var contexts = new[] { "Let's think step by step.\nStep 1:", "Let's think step by step.\nStep 1: 2*6=12.\nStep 2:" };
        var steps = new[] { " 2*6=12.", " 12+1=13.\nThe answer is 13." };
        for (int k = 0; k < 2; k++)
        {
            double Sum(Qwen2ForCausalLM m)
            {
                var (p, r) = ((ITextTokenizer)tok).TokenizeSeam(Template.Build(prompt, contexts[k]), steps[k]);
                var ids = torch.tensor(p.Concat(r).Select(i => (long)i).ToArray()).unsqueeze(0);
                using var _ = torch.no_grad();
                var lp = m.TokenLogProbs(ids[.., ..^1], ids[.., 1..]);
                return lp[0, (p.Length - 1)..].sum().item<float>();
            }
            double expected = 0.4 * (Sum(scorer.Scorer.Policy) - Sum(scorer.Scorer.Reference!));
            Assert.AreEqual(expected, scores.Rewards[k], 1e-4 + 1e-4 * Math.Abs(expected), $"step {k + 1}");
        }
    }

    [TestMethod]
    public void SavedScorerLoadsInAFreshProcessWithIdenticalOutputs()
    {
        var ml = new MLContext(seed: 1);
        var (model, tok) = TinyModel();
        var o = Options(model, tok); o.Epochs = 1;
        var scorer = ml.StepDpo().Trainers.StepDpo(o).Fit(ml.Data.LoadFromEnumerable(Pairs()));
        var dir = Directory.CreateTempSubdirectory("stepdpo-scorer-").FullName;
        try
        {
            var inputs = new[]
            {
                new ScoreInput { prompt = "Mia has 3 pens. Mia gets 4 more.", solution = "Let's think step by step.\nStep 1: 3+4=7.\nThe answer is 7." },
                new ScoreInput { prompt = "Ava has 2 boxes of 6.", solution = "Let's think step by step.\nStep 1: 2*6=12.\nStep 2: 12+1=14.\nThe answer is 14." },
                new ScoreInput { prompt = "Nothing", solution = "" },
            };
            var data = ml.Data.LoadFromEnumerable(inputs);
            var zip = Path.Combine(dir, "scorer.zip");
            ml.Model.Save(scorer, data.Schema, zip);
            var expected = ml.Data.CreateEnumerable<ScoreOutput>(scorer.Transform(data), reuseRowObject: false).ToList();
            Assert.AreEqual(0, expected[2].StepCount);
            Assert.AreEqual(-1, expected[2].FirstErrorStep);

            // Same process, through the public loader.
            var ml2 = new MLContext(seed: 2);
            ml2.ComponentCatalog.RegisterAssembly(typeof(StepScoringTransformer).Assembly);
            var loaded = ml2.Model.Load(zip, out _);
            var again = ml2.Data.CreateEnumerable<ScoreOutput>(loaded.Transform(ml2.Data.LoadFromEnumerable(inputs)), reuseRowObject: false).ToList();
            for (int i = 0; i < inputs.Length; i++)
                CollectionAssert.AreEqual(expected[i].StepRewards, again[i].StepRewards);

            // A new process.
            var jsonl = Path.Combine(dir, "in.jsonl");
            File.WriteAllLines(jsonl, inputs.Select(x => new JsonObject { ["prompt"] = x.prompt, ["solution"] = x.solution }.ToJsonString()));
            var outPath = Path.Combine(dir, "out.jsonl");
            var (code, output) = FreshProcess.RunTestHost("apply-model", "--model", zip, "--input", jsonl, "--fields", "prompt", "solution", "--output", outPath);
            Assert.AreEqual(0, code, output);
            var lines = File.ReadAllLines(outPath);
            Assert.HasCount(3, lines);
            for (int i = 0; i < lines.Length; i++)
            {
                var row = JsonNode.Parse(lines[i])!;
                var rewards = row["StepRewards"]!.AsArray().Select(n => n!.GetValue<float>()).ToArray();
                CollectionAssert.AreEqual(expected[i].StepRewards, rewards, $"row {i}");
                Assert.AreEqual(expected[i].FirstErrorStep, row["FirstErrorStep"]!.GetValue<int>());
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void CorruptedOrTamperedZipsGiveClearErrors()
    {
        var ml = new MLContext(seed: 1);
        var (model, tok) = TinyModel();
        var o = Options(model, tok); o.Epochs = 1;
        var scorer = ml.StepDpo().Trainers.StepDpo(o).Fit(ml.Data.LoadFromEnumerable(Pairs()));
        var dir = Directory.CreateTempSubdirectory("stepdpo-corrupt-").FullName;
        try
        {
            var input = new[] { new ScoreInput { prompt = "p", solution = "Let's think step by step.\nStep 1: 1+1=2." } };
            var data = ml.Data.LoadFromEnumerable(input);
            var zip = Path.Combine(dir, "scorer.zip");
            ml.Model.Save(scorer, data.Schema, zip);

            // Not a zip at all: ML.NET's own loader says so.
            var garbage = Path.Combine(dir, "garbage.zip");
            File.WriteAllBytes(garbage, Enumerable.Range(0, 4096).Select(i => (byte)(i * 37)).ToArray());
            var fresh = new MLContext(seed: 3);
            fresh.ComponentCatalog.RegisterAssembly(typeof(StepScoringTransformer).Assembly);
            var e1 = Assert.ThrowsExactly<FormatException>(() => fresh.Model.Load(garbage, out _));
            StringAssert.Contains(e1.Message, "zip");

            // A truncated model file fails to load rather than loading half a model.
            var truncated = Path.Combine(dir, "truncated.zip");
            var bytes = File.ReadAllBytes(zip);
            File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
            Assert.Throws<Exception>(() => fresh.Model.Load(truncated, out _));

            // Weights that do not match the hash the model recorded (tampered or mixed up).
            var e2 = Assert.ThrowsExactly<InvalidDataException>(() =>
                StepScoringMapping.Load(new byte[] { 1, 2, 3 }, new string('0', 64)));
            StringAssert.Contains(e2.Message, "do not match their recorded hash");

            // Weights whose hash matches but which are not a scorer bundle.
            var junk = new byte[] { 9, 8, 7, 6, 5 };
            var e3 = Assert.ThrowsExactly<InvalidDataException>(() =>
                StepScoringMapping.Load(junk, ScorerBundle.Sha256(junk)));
            StringAssert.Contains(e3.Message, "corrupted");
        }
        finally { Directory.Delete(dir, true); }
    }

    public sealed class AnswerPairRow
    {
        public string prompt { get; set; } = "";
        public string chosen { get; set; } = "";
        public string rejected { get; set; } = "";
    }

    private sealed class CountingProgress : IProgress<TrainingProgress>
    {
        public int Reports { get; private set; }
        public void Report(TrainingProgress value) => Reports++;
    }

    [TestMethod]
    public void DpoLeavesTheCallersOptionsAsTheyWere()
    {
        var ml = new MLContext(seed: 1);
        var (model, tok) = TinyModel();
        var o = Options(model, tok); o.Epochs = 2;
        var trainer = ml.StepDpo().Trainers.Dpo(o);
        Assert.AreEqual("initial_reason_steps", o.InitialReasonStepsColumnName);

        // Options are read when Fit runs (the train command sets Progress after creating the trainer).
        var progress = new CountingProgress();
        o.Progress = progress;
        // Answer-level pairs: whole solutions after the prompt alone; there is no prefix column.
        var answers = ml.Data.LoadFromEnumerable(Pairs().Select(p => new AnswerPairRow
        {
            prompt = p.prompt, chosen = p.initial_reason_steps + p.chosen, rejected = p.rejected.Length == 0 ? "" : p.initial_reason_steps + p.rejected,
        }));
        trainer.Fit(answers);
        Assert.AreEqual(4, trainer.LastReport!.ExamplesUsed);
        Assert.AreEqual(2, trainer.LastReport.OptimizerSteps);
        Assert.AreEqual(2, progress.Reports);

        // The same options still describe Step-DPO, which needs the prefix column.
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.StepDpo().Trainers.StepDpo(o).Fit(answers));
        StringAssert.Contains(e.Message, "Could not find input column 'initial_reason_steps'");
    }

    [TestMethod]
    public void MissingOrMistypedColumnsFailLikeMLNet()
    {
        var ml = new MLContext(seed: 1);
        var (model, tok) = TinyModel();
        var trainer = ml.StepDpo().Trainers.StepDpo(Options(model, tok));
        var noRejected = ml.Data.LoadFromEnumerable(new[] { new { prompt = "p", initial_reason_steps = "s", chosen = "c" } });
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(noRejected));
        StringAssert.Contains(e.Message, "Could not find input column 'rejected'");
        var wrongType = ml.Data.LoadFromEnumerable(new[] { new NumericChosen() });
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(wrongType));
        StringAssert.Contains(e.Message, "Schema mismatch for input column 'chosen'");
    }

    public sealed class NumericChosen
    {
        public string prompt { get; set; } = "";
        public string initial_reason_steps { get; set; } = "";
        public float chosen { get; set; }
        public string rejected { get; set; } = "";
    }
}
