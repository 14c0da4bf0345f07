using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Tests.Scoring;

/// <summary>
/// The folder a saved scorer is unpacked into is per-user, owner-only, and checked against the model's bundle before
/// each use: editing it changes nothing that a later load of the untouched zip computes.
/// </summary>
[TestClass]
public sealed class UnpackedScorerCacheTests
{
    private static readonly WeightCarrierTests.ScoreInput[] s_inputs =
    {
        new() { prompt = "Mia has 3 pens. Mia gets 4 more.", solution = "Let's think step by step.\nStep 1: 3+4=7.\nThe answer is 7." },
        new() { prompt = "Ava has 2 boxes of 6.", solution = "Let's think step by step.\nStep 1: 2*6=12.\nStep 2: 12+1=14.\nThe answer is 14." },
    };

    private static StepScorer TinyScorer(int seed, bool closeReference)
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64);
        var policy = Qwen2ForCausalLM.CreateRandom(config, seed: seed);
        var reference = Qwen2ForCausalLM.CreateRandom(config, seed: closeReference ? seed : seed + 1);
        if (closeReference)
            using (TorchSharp.torch.no_grad())
                foreach (var p in reference.parameters()) p.add_(TorchSharp.torch.randn_like(p) * 1e-4); // stored XOR the policy
        return new StepScorer(policy, reference, tok, new PromptTemplate("task", "Q: {instruction}\nA:", " "), beta: 0.4, threshold: 0);
    }

    private static List<float[]> Rewards(MLContext ml, ITransformer model) =>
        ml.Data.CreateEnumerable<WeightCarrierTests.ScoreOutput>(model.Transform(ml.Data.LoadFromEnumerable(s_inputs)), reuseRowObject: false)
            .Select(o => o.StepRewards).ToList();

    private static (MLContext, ITransformer) Load(string zip)
    {
        StepScoringMapping.ClearCache(); // LoadedBundles.Clear(): the next row unpacks or reuses the folder
        var ml = new MLContext(seed: 2);
        ml.ComponentCatalog.RegisterAssembly(typeof(StepScoringTransformer).Assembly);
        return (ml, ml.Model.Load(zip, out _));
    }

    [TestMethod]
    [DataRow(false, DisplayName = "the same process")]
    [DataRow(true, DisplayName = "a new process")]
    public void EditingTheUnpackedScorerChangesNoReward(bool newProcess)
    {
        string dir = Directory.CreateTempSubdirectory("stepdpo-cache-").FullName;
        string? unpacked = null;
        try
        {
            var ml = new MLContext(seed: 1);
            var data = ml.Data.LoadFromEnumerable(s_inputs);
            var fitted = StepScoringTransformer.BuildChain(ml, TinyScorer(newProcess ? 31 : 41, closeReference: newProcess), null, new StepScoringColumns(), out var sha, false).Fit(data);
            var zip = Path.Combine(dir, "scorer.zip");
            ml.Model.Save(fitted, data.Schema, zip);

            var (ml1, first) = Load(zip);
            var original = Rewards(ml1, first);
            Assert.IsTrue(original.Any(r => r.Any(x => x != 0)));
            unpacked = Path.Combine(BundleArchive.CacheDirectory("stepdpo-scorers"), sha);
            var manifestPath = Path.Combine(unpacked, "scorer.json");
            Assert.IsTrue(File.Exists(manifestPath), unpacked);

            // Someone multiplies every reward by 1,000 (β), and adds a file.
            var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!;
            manifest["Beta"] = manifest["Beta"]!.GetValue<double>() * 1000;
            File.WriteAllText(manifestPath, manifest.ToJsonString());
            if (newProcess)
            {
                File.WriteAllText(Path.Combine(unpacked, "extra.txt"), "x");
                BundleArchive.ForgetCheckedFolders();
            }

            var (ml2, second) = Load(zip);
            var again = Rewards(ml2, second);
            for (int i = 0; i < original.Count; i++)
                CollectionAssert.AreEqual(original[i], again[i], $"row {i}");
            StringAssert.Contains(File.ReadAllText(manifestPath), "0.4", "the folder was unpacked again");
            Assert.IsFalse(File.Exists(Path.Combine(unpacked, "extra.txt")));
            Assert.IsEmpty(Directory.GetFiles(Path.Combine(unpacked, "reference"), "*.xor-policy"));

            // Untouched, it is used as it is (a new process checks it against the bundle without unpacking).
            var stamp = File.GetLastWriteTimeUtc(manifestPath);
            BundleArchive.ForgetCheckedFolders();
            var (ml3, third) = Load(zip);
            CollectionAssert.AreEqual(original[0], Rewards(ml3, third)[0]);
            Assert.AreEqual(stamp, File.GetLastWriteTimeUtc(manifestPath), "an intact folder is not unpacked again");
        }
        finally
        {
            Directory.Delete(dir, true);
            if (unpacked is not null && Directory.Exists(unpacked)) Directory.Delete(unpacked, true);
        }
    }

    [TestMethod]
    public void TheCacheIsPerUserAndOwnerOnly()
    {
        string root = PrivateCacheFolder.Root;
        StringAssert.Contains(Path.GetFileName(root), "stepdpo-");
        Assert.AreEqual(Path.GetFullPath(Path.GetTempPath()).TrimEnd(Path.DirectorySeparatorChar), Path.GetDirectoryName(root), "directly under the temp folder");
        StringAssert.StartsWith(BundleArchive.CacheDirectory("stepdpo-scorers"), root);
        if (OperatingSystem.IsWindows())
            return;
        var groupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
                           | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
        Assert.AreEqual((UnixFileMode)0, File.GetUnixFileMode(root) & groupOrOther);

        // A world-writable folder of ours is made private; a link is refused.
        string dir = Directory.CreateTempSubdirectory("stepdpo-mode-").FullName;
        try
        {
            var open = Path.Combine(dir, "open");
            Directory.CreateDirectory(open);
            File.SetUnixFileMode(open, (UnixFileMode)0b111_111_111);
            Assert.IsTrue(PrivateCacheFolder.TryMakePrivate(open));
            Assert.AreEqual((UnixFileMode)0, File.GetUnixFileMode(open) & groupOrOther);
            var fresh = Path.Combine(dir, "fresh");
            Assert.IsTrue(PrivateCacheFolder.TryMakePrivate(fresh));
            Assert.AreEqual((UnixFileMode)0, File.GetUnixFileMode(fresh) & groupOrOther);
            var link = Path.Combine(dir, "link");
            Directory.CreateSymbolicLink(link, open);
            Assert.IsFalse(PrivateCacheFolder.TryMakePrivate(link));
            if (Environment.UserName != "root" && Directory.Exists("/"))
                Assert.IsFalse(PrivateCacheFolder.TryMakePrivate("/"), "a folder of another user cannot be made ours");
        }
        finally { Directory.Delete(dir, true); }
    }
}
