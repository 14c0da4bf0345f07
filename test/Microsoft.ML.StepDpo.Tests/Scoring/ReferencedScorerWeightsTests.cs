using System.IO.Compression;
using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Tests.Text;
using Microsoft.ML.StepDpo.Tests.Training;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;

namespace Microsoft.ML.StepDpo.Tests.Scoring;

/// <summary>
/// A full-fine-tuning scorer whose weights exceed <see cref="ScorerWeightsOptions.EmbedLimitBytes"/> writes its policy to a
/// folder and references it and the base (reference) model folder by path and SHA-256: the zip stays small, holds no
/// weights, scores exactly as the embedded form, and a missing or changed folder is named with the file that differs.
/// </summary>
[TestClass]
public sealed class ReferencedScorerWeightsTests
{
    private static readonly PromptTemplate Template = new("task", "Q: {instruction}\nA:", " ");

    private static readonly StepDpoTrainerTests.ScoreInput[] Inputs =
    {
        new() { prompt = "Mia has 3 pens. Mia gets 4 more.", solution = "Let's think step by step.\nStep 1: 3+4=7.\nThe answer is 7." },
        new() { prompt = "Ava has 2 boxes of 6.", solution = "Let's think step by step.\nStep 1: 2*6=12.\nStep 2: 12+1=14.\nThe answer is 14." },
        new() { prompt = "Nothing", solution = "" },
    };

    private static StepDpoTrainerTests.PairRow[] Pairs() => new StepDpoTrainerTests.PairRow[]
    {
        new() { prompt = "Mia has 3 pens. Mia gets 4 more.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 3+4=7.", rejected = " 3+4=8." },
        new() { prompt = "Ben has 5 cards. Ben loses 2.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 5-2=3.", rejected = " 5-2=4." },
        new() { prompt = "Ava has 2 boxes of 6.", initial_reason_steps = "Let's think step by step.\nStep 1: 2*6=12.\nStep 2:", chosen = " 12+1=13.", rejected = " 12+1=14." },
    };

    /// <summary>A tiny Qwen2 saved as a Hugging Face folder (the base model, and so the reference model).</summary>
    private static string BaseFolder(string dir, int seed = 5)
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64);
        using var model = Qwen2ForCausalLM.CreateRandom(config, seed: seed);
        var baseDir = Path.Combine(dir, "base");
        ModelCheckpoint.Save(model, baseDir);
        tok.Save(baseDir);
        return baseDir;
    }

    private static StepDpoTrainer.Options Options(string baseDir, ScorerWeightsOptions weights) => new()
    {
        BaseModelPath = baseDir, Template = Template, Beta = 0.4, LearningRate = 5e-3, Epochs = 2, BatchSize = 3, WarmupRatio = 0, Seed = 1,
        MaxLength = 256, MaxPromptLength = 200, ScorerWeights = weights,
    };

    private static List<StepDpoTrainerTests.ScoreOutput> Score(MLContext ml, ITransformer model) =>
        ml.Data.CreateEnumerable<StepDpoTrainerTests.ScoreOutput>(model.Transform(ml.Data.LoadFromEnumerable(Inputs)), reuseRowObject: false).ToList();

    /// <summary>Loads a zip as a new process would: nothing loaded, no folder or file hash remembered in memory.</summary>
    private static (MLContext, ITransformer) Reload(string zip)
    {
        StepScoringMapping.ClearCache();
        BundleArchive.ForgetCheckedFolders();
        FileHashCache.ForgetInMemory();
        var ml = new MLContext(seed: 9);
        return (ml, ml.Model.Load(zip, out _));
    }

    private static void AssertSame(List<StepDpoTrainerTests.ScoreOutput> expected, List<StepDpoTrainerTests.ScoreOutput> actual, string what)
    {
        Assert.HasCount(expected.Count, actual);
        for (int i = 0; i < expected.Count; i++)
        {
            CollectionAssert.AreEqual(expected[i].StepRewards, actual[i].StepRewards, $"{what}, row {i}");
            Assert.AreEqual(expected[i].FirstErrorStep, actual[i].FirstErrorStep, $"{what}, row {i}");
        }
    }

    private static string Messages(Exception e)
    {
        var parts = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException) parts.Add(x.Message);
        return string.Join(" | ", parts);
    }

    /// <summary>The library's own message among the wrappers ML.NET may add (the innermost one).</summary>
    private static string Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e.Message;
    }

    [TestMethod]
    public void AboveTheLimitTheZipReferencesThePolicyAndBaseFoldersAndScoresExactlyAsTheEmbeddedForm()
    {
        var dir = Directory.CreateTempSubdirectory("stepdpo-referenced-").FullName;
        try
        {
            var baseDir = BaseFolder(dir);
            var policyDir = Path.Combine(dir, "policy");
            var ml = new MLContext(seed: 1);
            var fitted = ml.StepDpo().Trainers.StepDpo(Options(baseDir, new ScorerWeightsOptions { EmbedLimitBytes = 0, PolicyDirectory = policyDir }))
                .Fit(ml.Data.LoadFromEnumerable(Pairs()));
            var expected = Score(ml, fitted);
            Assert.IsTrue(expected.Any(r => r.StepRewards.Any(x => x != 0)), "training moved the policy away from the reference");

            // The trainer wrote the trained policy as a Hugging Face folder, exactly what SavePolicy writes.
            foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json" })
                Assert.IsTrue(File.Exists(Path.Combine(policyDir, f)), f);
            var written = File.GetLastWriteTimeUtc(Path.Combine(policyDir, "model.safetensors"));
            fitted.SavePolicy(policyDir);
            Assert.AreEqual(written, File.GetLastWriteTimeUtc(Path.Combine(policyDir, "model.safetensors")), "SavePolicy onto the referenced folder writes nothing");
            var copy = Path.Combine(dir, "copy");
            fitted.SavePolicy(copy);
            CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(policyDir, "model.safetensors")), File.ReadAllBytes(Path.Combine(copy, "model.safetensors")));

            var referencedZip = Path.Combine(dir, "referenced.zip");
            ml.Model.Save(fitted, null, referencedZip);
            // The same trained scorer with its weights embedded, for comparison.
            var embeddedZip = Path.Combine(dir, "embedded.zip");
            var schema = ml.Data.LoadFromEnumerable(Inputs);
            ml.Model.Save(StepScoringTransformer.BuildChain(ml, fitted.Scorer, baseDir, new StepScoringColumns(), out _).Fit(schema), null, embeddedZip);

            // The zip holds no weights: it is smaller than the policy's weight file, and no entry contains a run of its bytes.
            long weights = new FileInfo(Path.Combine(policyDir, "model.safetensors")).Length;
            Assert.IsLessThan(weights / 4, new FileInfo(referencedZip).Length, $"referenced zip {new FileInfo(referencedZip).Length} B, policy weights {weights} B");
            Assert.IsGreaterThan(weights, new FileInfo(embeddedZip).Length, "the embedded zip carries policy and reference");
            var sample = File.ReadAllBytes(Path.Combine(policyDir, "model.safetensors")).AsSpan((int)(weights / 2), 64).ToArray();
            using (var zip = ZipFile.OpenRead(referencedZip))
                foreach (var entry in zip.Entries)
                {
                    using var s = entry.Open();
                    using var ms = new MemoryStream();
                    s.CopyTo(ms);
                    Assert.AreEqual(-1, ms.ToArray().AsSpan().IndexOf(sample), $"{entry.FullName} holds policy weights");
                }

            var (ml1, loadedReferenced) = Reload(referencedZip);
            AssertSame(expected, Score(ml1, loadedReferenced), "referenced zip, same process");
            var (ml2, loadedEmbedded) = Reload(embeddedZip);
            AssertSame(expected, Score(ml2, loadedEmbedded), "embedded zip, same process");

            // A new process.
            var jsonl = Path.Combine(dir, "in.jsonl");
            File.WriteAllLines(jsonl, Inputs.Select(x => new JsonObject { ["prompt"] = x.prompt, ["solution"] = x.solution }.ToJsonString()));
            var outPath = Path.Combine(dir, "out.jsonl");
            var (code, output) = FreshProcess.RunTestHost("apply-model", "--model", referencedZip, "--input", jsonl, "--fields", "prompt", "solution", "--output", outPath);
            Assert.AreEqual(0, code, output);
            var lines = File.ReadAllLines(outPath);
            Assert.HasCount(Inputs.Length, lines);
            for (int i = 0; i < lines.Length; i++)
                CollectionAssert.AreEqual(expected[i].StepRewards, JsonNode.Parse(lines[i])!["StepRewards"]!.AsArray().Select(n => n!.GetValue<float>()).ToArray(), $"new process, row {i}");
        }
        finally
        {
            StepScoringMapping.ClearCache();
            Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    public void TheLimitComparesPolicyAndReferenceTogetherAndWhatCannotBeReferencedFailsBeforeTraining()
    {
        var dir = Directory.CreateTempSubdirectory("stepdpo-limit-").FullName;
        try
        {
            var baseDir = BaseFolder(dir);
            var policyDir = Path.Combine(dir, "policy");
            long bytes = 2 * 1000;
            Assert.IsNull(new ScorerWeightsOptions { EmbedLimitBytes = bytes, PolicyDirectory = policyDir }.PolicyFolderFor(bytes, baseDir), "at the limit: embedded");
            Assert.AreEqual(Path.GetFullPath(policyDir), new ScorerWeightsOptions { EmbedLimitBytes = bytes - 1, PolicyDirectory = policyDir }.PolicyFolderFor(bytes, baseDir));
            Assert.AreEqual(256L << 20, new ScorerWeightsOptions().EmbedLimitBytes);

            var noFolder = Assert.ThrowsExactly<InvalidOperationException>(() => new ScorerWeightsOptions { EmbedLimitBytes = 0 }.PolicyFolderFor(bytes, baseDir));
            StringAssert.Contains(noFolder.Message, "ScorerWeights.PolicyDirectory");
            var onBase = Assert.ThrowsExactly<InvalidOperationException>(() => new ScorerWeightsOptions { EmbedLimitBytes = 0, PolicyDirectory = baseDir + "/" }.PolicyFolderFor(bytes, baseDir));
            StringAssert.Contains(onBase.Message, "is the base model folder");
            var inMemory = Assert.ThrowsExactly<InvalidOperationException>(() => new ScorerWeightsOptions { EmbedLimitBytes = 0, PolicyDirectory = policyDir }.PolicyFolderFor(bytes, null));
            StringAssert.Contains(inMemory.Message, "in-memory base model");
            foreach (var m in new[] { noFolder.Message, onBase.Message, inMemory.Message }) Assert.IsFalse(m.Contains('\n'), m);

            // Through the trainer: refused at trainer creation (a limit out of range) or before the first optimizer step.
            var ml = new MLContext(seed: 1);
            var tooLarge = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
                ml.StepDpo().Trainers.StepDpo(Options(baseDir, new ScorerWeightsOptions { EmbedLimitBytes = ScorerWeightsOptions.MaxEmbedLimitBytes + 1 })));
            StringAssert.Contains(tooLarge.Message, "EmbedLimitBytes");
            int steps = 0;
            var o = Options(baseDir, new ScorerWeightsOptions { EmbedLimitBytes = 0 });
            o.Progress = new Progress<TrainingProgress>(_ => Interlocked.Increment(ref steps));
            var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.StepDpo().Trainers.StepDpo(o).Fit(ml.Data.LoadFromEnumerable(Pairs())));
            StringAssert.Contains(e.Message, "ScorerWeights.PolicyDirectory");
            Assert.AreEqual(0, steps, "refused before training");
            Assert.IsFalse(Directory.Exists(policyDir));
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void AMissingOrChangedReferencedFolderIsNamedWithTheFileThatDiffers()
    {
        var dir = Directory.CreateTempSubdirectory("stepdpo-referenced-errors-").FullName;
        try
        {
            var baseDir = BaseFolder(dir);
            var policyDir = Path.Combine(dir, "policy");
            var ml = new MLContext(seed: 1);
            var fitted = ml.StepDpo().Trainers.StepDpo(Options(baseDir, new ScorerWeightsOptions { EmbedLimitBytes = 0, PolicyDirectory = policyDir }))
                .Fit(ml.Data.LoadFromEnumerable(Pairs()));
            var expected = Score(ml, fitted);
            var zip = Path.Combine(dir, "scorer.zip");
            ml.Model.Save(fitted, null, zip);

            // Touched but unchanged: hashed again, accepted.
            var weights = Path.Combine(policyDir, "model.safetensors");
            int reads = FileHashCache.Reads(weights);
            File.SetLastWriteTimeUtc(weights, File.GetLastWriteTimeUtc(weights).AddSeconds(5));
            var (ml1, touched) = Reload(zip);
            AssertSame(expected, Score(ml1, touched), "touched policy file");
            Assert.AreEqual(reads + 1, FileHashCache.Reads(weights), "a file whose time changed is hashed again");

            // One byte of the policy changes.
            var original = File.ReadAllBytes(weights);
            var bytes = (byte[])original.Clone();
            bytes[^3] ^= 0x40;
            File.WriteAllBytes(weights, bytes);
            var (ml2, changed) = Reload(zip);
            var message = Innermost(Assert.Throws<Exception>(() => Score(ml2, changed)));
            StringAssert.Contains(message, $"policy folder '{policyDir}' has changed since the step scorer was trained: model.safetensors has SHA-256");
            Assert.IsFalse(message.Contains('\n'), message);
            File.WriteAllBytes(weights, original);

            // A file the folder did not have (an index that would change which files are read).
            var index = Path.Combine(policyDir, ModelCheckpoint.IndexFile);
            File.WriteAllText(index, """{"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model.safetensors"}}""");
            var (ml3, extra) = Reload(zip);
            message = Innermost(Assert.Throws<Exception>(() => Score(ml3, extra)));
            StringAssert.Contains(message, $"policy folder '{policyDir}' has changed since the step scorer was trained: it has model.safetensors.index.json");
            File.Delete(index);

            // The base (reference) model folder is gone.
            Directory.Move(baseDir, baseDir + "-moved");
            var (ml4, missing) = Reload(zip);
            message = Innermost(Assert.Throws<Exception>(() => Score(ml4, missing)));
            StringAssert.Contains(message, $"reference model folder '{baseDir}' is missing: the model uses that folder by path (config.json, model.safetensors");
            Assert.IsFalse(message.Contains('\n'), message);
            Directory.Move(baseDir + "-moved", baseDir);
            var (ml5, back) = Reload(zip);
            AssertSame(expected, Score(ml5, back), "folders restored");
        }
        finally
        {
            StepScoringMapping.ClearCache();
            Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    public void ModelLoadReadsNoWeightsAndAnUnchangedFolderIsNotHashedAgain()
    {
        var dir = Directory.CreateTempSubdirectory("stepdpo-referenced-lazy-").FullName;
        try
        {
            var baseDir = BaseFolder(dir);
            var tok = ByteLevelBpeTokenizer.FromDirectory(baseDir);
            var policyDir = Path.Combine(dir, "policy");
            var policy = ModelCheckpoint.Load(baseDir);
            var reference = ModelCheckpoint.Load(baseDir);
            using (TorchSharp.torch.no_grad())
                foreach (var p in policy.parameters()) p.add_(TorchSharp.torch.randn_like(p) * 0.05); // a "trained" policy
            ModelCheckpoint.Save(policy, policyDir);
            tok.Save(policyDir);
            var scorer = new StepScorer(policy, reference, tok, Template, 0.4, 0);
            var ml = new MLContext(seed: 1);
            var fitted = StepScoringTransformer.BuildChain(ml, scorer, baseDir, new StepScoringColumns(), out var sha, policyFolder: policyDir)
                .Fit(ml.Data.LoadFromEnumerable(Inputs));
            var expected = Score(ml, fitted);
            var zip = Path.Combine(dir, "scorer.zip");
            ml.Model.Save(fitted, null, zip);
            var weights = Path.Combine(policyDir, "model.safetensors");
            int reads = FileHashCache.Reads(weights);

            // Model.Load touches no weight: nothing hashed, nothing loaded; the first row does both.
            File.SetLastWriteTimeUtc(weights, File.GetLastWriteTimeUtc(weights).AddSeconds(5)); // so that the check must read it
            var (ml1, loaded) = Reload(zip);
            Assert.IsNull(LoadedBundles.Loaded(sha));
            Assert.AreEqual(reads, FileHashCache.Reads(weights), "Model.Load reads no weight file");
            var engine = ml1.Model.CreatePredictionEngine<StepDpoTrainerTests.ScoreInput, StepDpoTrainerTests.ScoreOutput>(loaded);
            CollectionAssert.AreEqual(expected[1].StepRewards, engine.Predict(Inputs[1]).StepRewards);
            Assert.IsNotNull(LoadedBundles.Loaded(sha));
            Assert.AreEqual(reads + 1, FileHashCache.Reads(weights));

            // Loaded again as by a new process: the record of size and time answers; the weights are not read to be hashed.
            var (ml2, again) = Reload(zip);
            AssertSame(expected, Score(ml2, again), "second load");
            Assert.AreEqual(reads + 1, FileHashCache.Reads(weights), "an unchanged file is not hashed again");
        }
        finally
        {
            StepScoringMapping.ClearCache();
            Directory.Delete(dir, true);
        }
    }
}
