using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Persistence;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Tests.Scoring;

/// <summary>
/// How a saved model carries its weights: a ValueMapping whose key is withheld once the model is loaded (so rows do
/// not copy the weights), and the format-2 bundle (byte planes + Brotli). Everything is compared with the plain path:
/// the in-memory scorer, the previous carrier, the original bytes.
/// </summary>
[TestClass]
public sealed class WeightCarrierTests
{
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

    private static readonly ScoreInput[] s_inputs =
    {
        new() { prompt = "Mia has 3 pens. Mia gets 4 more.", solution = "Let's think step by step.\nStep 1: 3+4=7.\nThe answer is 7." },
        new() { prompt = "Ava has 2 boxes of 6.", solution = "Let's think step by step.\nStep 1: 2*6=12.\nStep 2: 12+1=14.\nThe answer is 14." },
        new() { prompt = "Ben has 5 cards.", solution = "Let's think step by step.\nStep 1: 5-2=3.\nStep 2: 3*2=6.\nStep 3: 6+1=7.\nThe answer is 7." },
        new() { prompt = "Nothing", solution = "" },
        new() { prompt = "Sam has 9 coins.", solution = "Let's think step by step.\nStep 1: 9-4=5.\nThe answer is 5." },
    };

    private static StepScorer TinyScorer(int seed)
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64);
        return new StepScorer(Qwen2ForCausalLM.CreateRandom(config, seed: seed), Qwen2ForCausalLM.CreateRandom(config, seed: seed + 1), tok,
            new PromptTemplate("task", "Q: {instruction}\nA:", " "), beta: 0.4, threshold: 0);
    }

    /// <summary>Saves a scorer built with the given carrier, clears the in-process cache and loads it back.</summary>
    private static (ITransformer Loaded, string Sha, MLContext Context) SaveAndLoad(StepScorer scorer, string dir, bool legacy)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(s_inputs);
        var fitted = StepScoringTransformer.BuildChain(ml, scorer, null, new StepScoringColumns(), out var sha, legacy).Fit(data);
        var zip = Path.Combine(dir, legacy ? "legacy.zip" : "scorer.zip");
        ml.Model.Save(fitted, data.Schema, zip);
        StepScoringMapping.ClearCache();
        var fresh = new MLContext(seed: 2);
        fresh.ComponentCatalog.RegisterAssembly(typeof(StepScoringTransformer).Assembly);
        return (fresh.Model.Load(zip, out _), sha, fresh);
    }

    private static void AssertSameAsScorer(StepScorer scorer, ScoreInput input, ScoreOutput actual, string what)
    {
        var expected = scorer.Score(input.prompt, input.solution);
        CollectionAssert.AreEqual(expected.Rewards, actual.StepRewards, what);
        Assert.AreEqual(expected.FirstErrorStep, actual.FirstErrorStep, what);
        Assert.AreEqual(expected.Rewards.Length, actual.StepCount, what);
    }

    [TestMethod]
    public void ALoadedScorerReceivesItsWeightsOnceNotOncePerRow()
    {
        var scorer = TinyScorer(11);
        var dir = Directory.CreateTempSubdirectory("stepdpo-carrier-").FullName;
        try
        {
            var (loaded, sha, ml) = SaveAndLoad(scorer, dir, legacy: false);
            Assert.AreEqual(0, LoadedBundles.Deliveries(sha));

            // A batch transform and a prediction engine: identical outputs to the in-memory scorer, one delivery in all.
            var batch = ml.Data.CreateEnumerable<ScoreOutput>(loaded.Transform(ml.Data.LoadFromEnumerable(s_inputs)), reuseRowObject: false).ToList();
            for (int i = 0; i < s_inputs.Length; i++) AssertSameAsScorer(scorer, s_inputs[i], batch[i], $"batch row {i}");
            Assert.AreEqual(1, LoadedBundles.Deliveries(sha));
            var engine = ml.Model.CreatePredictionEngine<ScoreInput, ScoreOutput>(loaded);
            for (int round = 0; round < 3; round++)
                foreach (var input in s_inputs) AssertSameAsScorer(scorer, input, engine.Predict(input), $"engine {input.prompt}");
            Assert.AreEqual(1, LoadedBundles.Deliveries(sha), "rows after the first must get an empty weights vector");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void ClearingTheCacheBetweenRowsReloadsAndGivesTheSameOutputs()
    {
        var scorer = TinyScorer(21);
        var dir = Directory.CreateTempSubdirectory("stepdpo-carrier-").FullName;
        try
        {
            var (loaded, sha, ml) = SaveAndLoad(scorer, dir, legacy: false);
            var engine = ml.Model.CreatePredictionEngine<ScoreInput, ScoreOutput>(loaded);
            for (int i = 0; i < s_inputs.Length; i++)
            {
                AssertSameAsScorer(scorer, s_inputs[i], engine.Predict(s_inputs[i]), $"row {i}");
                StepScoringMapping.ClearCache();
            }
            Assert.AreEqual(s_inputs.Length, LoadedBundles.Deliveries(sha), "each row after a clear loads again");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void ARowWhoseWeightsWereWithheldFindsItsScorerEvenIfTheCacheIsClearedMidRow()
    {
        var scorer = TinyScorer(31);
        const string sha = "test-mid-row-clear";
        var config = PersistedMapping.ConfigExpression(new BundleSettings { BundleSha256 = sha });
        var encoded = config[(config.IndexOf('"') + 1)..config.LastIndexOf('"')];
        StepScoringMapping.Register(sha, scorer);

        // The key mapping sees the scorer loaded and withholds the weights ...
        var key = new StepScoringMapping.KeyOutput();
        StepScoringMapping.MapKey(new StepScoringMapping.KeyInput { Config = encoded }, key);
        Assert.AreEqual("", key.Key);
        // ... the cache is cleared before the scoring mapping of the same row runs: it uses the scorer the key mapping saw.
        StepScoringMapping.ClearCache();
        var output = new StepScoringMapping.Output();
        var input = new StepScoringMapping.Input { Config = encoded, Prompt = s_inputs[0].prompt, Solution = s_inputs[0].solution };
        StepScoringMapping.Map(input, output);
        CollectionAssert.AreEqual(scorer.Score(s_inputs[0].prompt, s_inputs[0].solution).Rewards, output.Rewards.DenseValues().ToArray());

        // The pin lasts one row: with no weights, nothing cached and nothing pinned, the error says so.
        var e = Assert.ThrowsExactly<InvalidDataException>(() => StepScoringMapping.Map(input, new StepScoringMapping.Output()));
        StringAssert.Contains(e.Message, "holds no weights");
        // And with the scorer not loaded the key mapping asks for the weights.
        StepScoringMapping.MapKey(new StepScoringMapping.KeyInput { Config = encoded }, key);
        Assert.AreEqual(LoadedBundles.WeightsKey, key.Key);
    }

    public sealed class KeyRow
    {
        public string Key { get; set; } = "";
    }

    public sealed class BytesRow
    {
        public byte[] Bytes { get; set; } = Array.Empty<byte>();
    }

    [TestMethod]
    public void ValueMappingGivesAnEmptyVectorForAKeyItDoesNotHold()
    {
        // What the gate relies on, checked against ML.NET itself: a missing key yields an empty vector, the stored one
        // comes back whole for its key.
        var ml = new MLContext(seed: 1);
        var stored = Enumerable.Range(0, 1000).Select(i => (byte)(i * 7)).ToArray();
        var map = ml.Transforms.Conversion.MapValue("Bytes", new[] { new KeyValuePair<string, byte[]>("w", stored) }, "Key");
        var rows = ml.Data.LoadFromEnumerable(new[] { new KeyRow { Key = "w" }, new KeyRow { Key = "" }, new KeyRow { Key = "other" } });
        var result = ml.Data.CreateEnumerable<BytesRow>(map.Fit(rows).Transform(rows), reuseRowObject: false).ToList();
        CollectionAssert.AreEqual(stored, result[0].Bytes);
        Assert.IsEmpty(result[1].Bytes);
        Assert.IsEmpty(result[2].Bytes);
    }

    [TestMethod]
    public void TheCurrentCarrierScoresExactlyAsThePreviousOneAndOldZipsStillLoad()
    {
        var scorer = TinyScorer(41);
        var dir = Directory.CreateTempSubdirectory("stepdpo-carrier-").FullName;
        try
        {
            var (legacy, legacySha, ml1) = SaveAndLoad(scorer, dir, legacy: true);
            var before = ml1.Data.CreateEnumerable<ScoreOutput>(legacy.Transform(ml1.Data.LoadFromEnumerable(s_inputs)), reuseRowObject: false).ToList();
            Assert.AreEqual(s_inputs.Length, LoadedBundles.Deliveries(legacySha), "the previous carrier copies the weights on every row");
            var (current, _, ml2) = SaveAndLoad(scorer, dir, legacy: false);
            var after = ml2.Data.CreateEnumerable<ScoreOutput>(current.Transform(ml2.Data.LoadFromEnumerable(s_inputs)), reuseRowObject: false).ToList();
            for (int i = 0; i < s_inputs.Length; i++)
            {
                CollectionAssert.AreEqual(before[i].StepRewards, after[i].StepRewards, $"row {i}");
                Assert.AreEqual(before[i].FirstErrorStep, after[i].FirstErrorStep);
                AssertSameAsScorer(scorer, s_inputs[i], after[i], $"row {i}");
            }
            Assert.IsLessThan(new FileInfo(Path.Combine(dir, "legacy.zip")).Length, new FileInfo(Path.Combine(dir, "scorer.zip")).Length);
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void Format2BundlesGiveBackTheSameBytes()
    {
        var rng = new Random(5);
        foreach (var length in new[] { 0, 1, 3, 4, 5, 1023, 4096, 100_003 })
        {
            var payload = new byte[length];
            rng.NextBytes(payload);
            var packed = BundleArchive.Encode(payload);
            CollectionAssert.AreEqual(payload, BundleArchive.Decode(packed, "test"), $"length {length}");
            var planes = new byte[length];
            BundleArchive.SplitPlanes(payload, planes);
            if (length >= 8) Assert.AreEqual(payload[4], planes[1], "byte 0 of the second group is the second byte of plane 0");
            var back = new byte[length];
            BundleArchive.JoinPlanes(planes, back);
            CollectionAssert.AreEqual(payload, back);
        }
        // Real fp32 weights: the bundle holds the very bytes of the files, and is smaller than they are.
        var folder = Directory.CreateTempSubdirectory("stepdpo-bundle-test-").FullName;
        try
        {
            var scorer = TinyScorer(51);
            ModelCheckpoint.Save(scorer.Policy, folder);
            var files = Directory.GetFiles(folder).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);
            var bundle = BundleArchive.Pack(folder);
            Assert.IsLessThan(files.Values.Sum(f => f.Length), bundle.Length);
            var dir = BundleArchive.Unpack(bundle, ScorerBundle.Sha256(bundle), "stepdpo-bundle-tests", ModelCheckpoint.ConfigFile, "test");
            try
            {
                foreach (var (name, bytes) in files) CollectionAssert.AreEqual(bytes, File.ReadAllBytes(Path.Combine(dir, name)), name);
            }
            finally { Directory.Delete(dir, true); }
        }
        finally { Directory.Delete(folder, true); }
        // A damaged stream is reported as such.
        var damaged = BundleArchive.Encode(new byte[50_000]);
        damaged[^3] ^= 0x5a;
        var e = Assert.ThrowsExactly<InvalidDataException>(() => BundleArchive.Decode(damaged.AsSpan(0, damaged.Length - 10), "step scorer"));
        StringAssert.Contains(e.Message, "corrupted");
    }

    [TestMethod]
    public void AFineTunedReferenceIsStoredAsItsDifferenceFromThePolicyAndComesBackExactly()
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128);
        var template = new PromptTemplate("task", "Q: {instruction}\nA:", " ");
        var reference = Qwen2ForCausalLM.CreateRandom(config, seed: 71);
        var tuned = Qwen2ForCausalLM.CreateRandom(config, seed: 71);
        using (TorchSharp.torch.no_grad())
            foreach (var p in tuned.parameters()) p.add_(TorchSharp.torch.randn_like(p) * 1e-4); // a fine-tuning-sized change
        var unrelated = Qwen2ForCausalLM.CreateRandom(config, seed: 72);
        var close = ScorerBundle.Create(new StepScorer(tuned, reference, tok, template, 0.4, 0), null);
        var far = ScorerBundle.Create(new StepScorer(unrelated, reference, tok, template, 0.4, 0), null);
        Assert.IsLessThan(0.92 * far.Length, (double)close.Length, $"fine-tuned {close.Length} B vs unrelated {far.Length} B");

        foreach (var (bundle, policy) in new[] { (close, tuned), (far, unrelated) })
        {
            var sha = ScorerBundle.Sha256(bundle);
            var unpacked = Path.Combine(BundleArchive.CacheDirectory("stepdpo-scorers"), sha);
            try
            {
                using var loaded = ScorerBundle.Load(bundle, sha);
                foreach (var (expected, actual) in new[] { (policy, loaded.Policy), (reference, loaded.Reference!) })
                {
                    var a = expected.named_parameters().ToDictionary(p => p.name, p => p.parameter);
                    foreach (var (name, p) in actual.named_parameters())
                        Assert.IsTrue(p.equal(a[name]).all().item<bool>(), name);
                }
                Assert.IsEmpty(Directory.GetFiles(Path.Combine(unpacked, "reference"), "*.xor-policy"));
                using var zip = new System.IO.Compression.ZipArchive(new MemoryStream(BundleArchive.Decode(bundle, "test")));
                Assert.AreEqual(policy == tuned, zip.GetEntry("reference/model.safetensors.xor-policy") is not null, "XOR only when the policy is close");
            }
            finally { if (Directory.Exists(unpacked)) Directory.Delete(unpacked, true); }
        }
    }

    public sealed class PromptRow
    {
        public string prompt { get; set; } = "";
    }

    public sealed class Generated
    {
        public string GeneratedText { get; set; } = "";
    }

    [TestMethod]
    public void ALoadedGeneratorReceivesItsWeightsOnce()
    {
        var ml = new MLContext(seed: 1);
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64), seed: 61);
        var rows = new[] { "2+3", "4+4", "1+6" }.Select(p => new PromptRow { prompt = p }).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);
        var fitted = TextGenerationTransformer.BuildChain(ml, model, tok, new PromptTemplate("qa", "Q: {instruction}\nA:", " "), 4, "prompt", "GeneratedText", out var sha).Fit(data);
        var expected = ml.Data.CreateEnumerable<Generated>(fitted.Transform(data), reuseRowObject: false).Select(g => g.GeneratedText).ToList();
        var dir = Directory.CreateTempSubdirectory("stepdpo-carrier-").FullName;
        try
        {
            var zip = Path.Combine(dir, "gen.zip");
            ml.Model.Save(fitted, data.Schema, zip);
            StepScoringMapping.ClearCache();
            var fresh = new MLContext(seed: 2);
            fresh.ComponentCatalog.RegisterAssembly(typeof(TextGenerationTransformer).Assembly);
            var loaded = fresh.Model.Load(zip, out _);
            var engine = fresh.Model.CreatePredictionEngine<PromptRow, Generated>(loaded);
            for (int round = 0; round < 2; round++)
                for (int i = 0; i < rows.Length; i++)
                    Assert.AreEqual(expected[i], engine.Predict(rows[i]).GeneratedText, rows[i].prompt);
            Assert.AreEqual(1, LoadedBundles.Deliveries(sha));
        }
        finally { Directory.Delete(dir, true); }
    }
}
