using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;

using Microsoft.ML.StepDpo.Tests.Training;

namespace Microsoft.ML.StepDpo.Tests.Scoring;

/// <summary>
/// A LoRA step scorer saves its adapters and either references its base model folder (path + SHA-256) or, when
/// training started from an in-memory model, carries the base itself; both load back to identical outputs.
/// </summary>
[TestClass]
public sealed class LoraScorerPersistenceTests
{
    private static readonly PromptTemplate Template = new("task", "Q: {instruction}\nA:", " ");

    private static readonly StepDpoTrainerTests.ScoreInput[] Inputs =
    {
        new() { prompt = "Mia has 3 pens. Mia gets 4 more.", solution = "Let's think step by step.\nStep 1: 3+4=7.\nThe answer is 7." },
        new() { prompt = "Ava has 2 boxes of 6.", solution = "Let's think step by step.\nStep 1: 2*6=12.\nStep 2: 12+1=14.\nThe answer is 14." },
    };

    private static StepDpoTrainerTests.PairRow[] Pairs() => new StepDpoTrainerTests.PairRow[]
    {
        new() { prompt = "Mia has 3 pens. Mia gets 4 more.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 3+4=7.", rejected = " 3+4=8." },
        new() { prompt = "Ben has 5 cards. Ben loses 2.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 5-2=3.", rejected = " 5-2=4." },
        new() { prompt = "Ava has 2 boxes of 6.", initial_reason_steps = "Let's think step by step.\nStep 1: 2*6=12.\nStep 2:", chosen = " 12+1=13.", rejected = " 12+1=14." },
    };

    private static StepDpoTrainer.Options Options() => new()
    {
        Template = Template, Beta = 0.4, LearningRate = 2e-2, Epochs = 3, BatchSize = 3, WarmupRatio = 0, Seed = 1,
        MaxLength = 256, MaxPromptLength = 200, UseLora = true, Lora = new LoraSettings { Rank = 4, Alpha = 8, Dropout = 0 },
    };

    private static (Qwen2ForCausalLM, ByteLevelBpeTokenizer) TinyModel()
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64);
        return (Qwen2ForCausalLM.CreateRandom(config, seed: 5), tok);
    }

    private static List<float[]> Score(MLContext ml, ITransformer model) =>
        ml.Data.CreateEnumerable<StepDpoTrainerTests.ScoreOutput>(model.Transform(ml.Data.LoadFromEnumerable(Inputs)), reuseRowObject: false)
            .Select(o => o.StepRewards).ToList();

    private static ITransformer Reload(string zip)
    {
        StepScoringMapping.ClearCache();
        var fresh = new MLContext(seed: 9);
        fresh.ComponentCatalog.RegisterAssembly(typeof(StepScoringTransformer).Assembly);
        return fresh.Model.Load(zip, out _);
    }

    private static string Messages(Exception e)
    {
        var parts = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException) parts.Add(x.Message);
        return string.Join(" | ", parts);
    }

    [TestMethod]
    public void InMemoryBaseTravelsInTheZip()
    {
        var ml = new MLContext(seed: 1);
        var (model, tok) = TinyModel();
        var o = Options();
        o.BaseModel = model;
        o.BaseTokenizer = tok;
        var scorer = ml.StepDpo().Trainers.StepDpo(o).Fit(ml.Data.LoadFromEnumerable(Pairs()));
        Assert.IsNull(scorer.Scorer.Reference, "a LoRA scorer has no second model: the reference is the base with adapters off");
        var expected = Score(ml, scorer);
        Assert.IsTrue(expected.Any(r => r.Any(x => x != 0)), "training moved the adapters");

        string dir = Directory.CreateTempSubdirectory("stepdpo-lora-mem-").FullName;
        try
        {
            string zip = Path.Combine(dir, "scorer.zip");
            ml.Model.Save(scorer, null, zip);
            var again = Score(new MLContext(seed: 2), Reload(zip));
            for (int i = 0; i < Inputs.Length; i++)
                CollectionAssert.AreEqual(expected[i], again[i], $"row {i}");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void BaseByPathLoadsAndAChangedOrMissingBaseIsNamed()
    {
        var ml = new MLContext(seed: 1);
        var (model, tok) = TinyModel();
        string dir = Directory.CreateTempSubdirectory("stepdpo-lora-path-").FullName;
        try
        {
            string baseDir = Path.Combine(dir, "base");
            ModelCheckpoint.Save(model, baseDir);
            tok.Save(baseDir);
            model.Dispose();
            var o = Options();
            o.BaseModelPath = baseDir;
            var scorer = ml.StepDpo().Trainers.StepDpo(o).Fit(ml.Data.LoadFromEnumerable(Pairs()));
            var expected = Score(ml, scorer);
            string zip = Path.Combine(dir, "scorer.zip");
            ml.Model.Save(scorer, null, zip);
            Assert.IsLessThan(new FileInfo(Path.Combine(baseDir, "model.safetensors")).Length, new FileInfo(zip).Length,
                "the zip holds the adapters, not a copy of the base");

            var again = Score(new MLContext(seed: 2), Reload(zip));
            for (int i = 0; i < Inputs.Length; i++)
                CollectionAssert.AreEqual(expected[i], again[i], $"row {i}");

            // One byte of the base changes: the scorer refuses it and says why.
            string weights = Path.Combine(baseDir, "model.safetensors");
            var bytes = File.ReadAllBytes(weights);
            bytes[^3] ^= 0x40;
            File.WriteAllBytes(weights, bytes);
            var changed = Assert.Throws<Exception>(() => Score(new MLContext(seed: 3), Reload(zip)));
            StringAssert.Contains(Messages(changed), "has changed since the step scorer was trained");

            // The base folder is gone.
            Directory.Delete(baseDir, true);
            var missing = Assert.Throws<Exception>(() => Score(new MLContext(seed: 4), Reload(zip)));
            StringAssert.Contains(Messages(missing), "base model folder");
            StringAssert.Contains(Messages(missing), "is missing");
        }
        finally
        {
            StepScoringMapping.ClearCache();
            Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    public void AZipFromBeforePerFileHashesStillLoadsAndItsBaseIsHashedOncePerChange()
    {
        var ml = new MLContext(seed: 1);
        var (model, tok) = TinyModel();
        string dir = Directory.CreateTempSubdirectory("stepdpo-lora-v1-").FullName;
        try
        {
            string baseDir = Path.Combine(dir, "base");
            ModelCheckpoint.Save(model, baseDir);
            tok.Save(baseDir);
            model.Dispose();
            var o = Options();
            o.BaseModelPath = baseDir;
            var trained = ml.StepDpo().Trainers.StepDpo(o).Fit(ml.Data.LoadFromEnumerable(Pairs())).Scorer;
            // The bundle as format 1 wrote it: the base referenced by path and one SHA-256 over its files.
            var bundle = BundleArchive.Create(staging =>
            {
                var manifest = new ScorerManifest
                {
                    Beta = trained.Beta, Threshold = trained.Threshold, Lora = true, TemplateName = Template.Name, Template = Template.Template,
                    Separator = Template.Separator, BaseModelPath = Path.GetFullPath(baseDir), BaseModelSha256 = ModelHash.OfFolder(baseDir),
                };
                LoraAdapters.Save(trained.Policy, Path.Combine(staging, "adapters"), manifest.BaseModelPath);
                trained.Tokenizer.Save(Path.Combine(staging, "adapters"));
                File.WriteAllText(Path.Combine(staging, "scorer.json"), System.Text.Json.JsonSerializer.Serialize(manifest));
            });
            var sha = ScorerBundle.Sha256(bundle);
            int reads = FileHashCache.FolderReads(baseDir);
            foreach (var round in new[] { 1, 2 })
            {
                FileHashCache.ForgetInMemory(); // as a new process
                using var loaded = ScorerBundle.Load(bundle, sha);
                foreach (var input in Inputs)
                    CollectionAssert.AreEqual(trained.Score(input.prompt, input.solution).Rewards, loaded.Score(input.prompt, input.solution).Rewards, $"load {round}");
                Assert.AreEqual(reads + 1, FileHashCache.FolderReads(baseDir), "the base is hashed at the first load only");
            }

            string weights = Path.Combine(baseDir, "model.safetensors");
            var bytes = File.ReadAllBytes(weights);
            bytes[^3] ^= 0x40;
            File.WriteAllBytes(weights, bytes);
            var changed = Assert.ThrowsExactly<InvalidDataException>(() => ScorerBundle.Load(bundle, sha));
            StringAssert.Contains(changed.Message, $"base model folder '{Path.GetFullPath(baseDir)}' has changed since the step scorer was trained");
        }
        finally { Directory.Delete(dir, true); }
    }
}
