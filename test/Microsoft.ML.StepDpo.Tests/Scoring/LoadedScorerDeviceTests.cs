using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Text;
using TorchSharp;

namespace Microsoft.ML.StepDpo.Tests.Scoring;

/// <summary>
/// A saved scorer loaded through <c>mlContext.StepDpo().LoadModel</c> goes to the context's device like the trainers do:
/// a CUDA device that is not there is refused at load unless <see cref="MLContext.FallbackToCpu"/> allows the CPU. No CUDA
/// here, so placement is proven on libtorch's meta device (shapes, no data; an operation that mixes in a CPU tensor fails).
/// </summary>
[TestClass]
public sealed class LoadedScorerDeviceTests
{
    private static readonly WeightCarrierTests.ScoreInput[] Inputs =
    {
        new() { prompt = "Mia has 3 pens. Mia gets 4 more.", solution = "Let's think step by step.\nStep 1: 3+4=7.\nThe answer is 7." },
        new() { prompt = "Ava has 2 boxes of 6.", solution = "Let's think step by step.\nStep 1: 2*6=12.\nStep 2: 12+1=14.\nThe answer is 14." },
    };

    private static (StepScorer Scorer, string Zip, string Sha) SavedScorer(string dir, int seed)
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64);
        var scorer = new StepScorer(Qwen2ForCausalLM.CreateRandom(config, seed: seed), Qwen2ForCausalLM.CreateRandom(config, seed: seed + 1), tok,
            new PromptTemplate("task", "Q: {instruction}\nA:", " "), beta: 0.4, threshold: 0);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Inputs);
        var fitted = StepScoringTransformer.BuildChain(ml, scorer, null, new StepScoringColumns(), out var sha).Fit(data);
        var zip = Path.Combine(dir, "scorer.zip");
        ml.Model.Save(fitted, data.Schema, zip);
        StepScoringMapping.ClearCache();
        return (scorer, zip, sha);
    }

    private static List<float[]> Rewards(MLContext ml, ITransformer model) =>
        ml.Data.CreateEnumerable<WeightCarrierTests.ScoreOutput>(model.Transform(ml.Data.LoadFromEnumerable(Inputs)), reuseRowObject: false)
            .Select(o => o.StepRewards).ToList();

    [TestMethod]
    public void AGpuThatIsNotThereIsRefusedAtLoadUnlessTheContextFallsBackToTheCpu()
    {
        var dir = Directory.CreateTempSubdirectory("stepdpo-device-").FullName;
        try
        {
            var (scorer, zip, sha) = SavedScorer(dir, 81);
            var strict = new MLContext(seed: 2) { GpuDeviceId = 4096, FallbackToCpu = false }; // no machine has CUDA device 4096
            var e = Assert.ThrowsExactly<InvalidOperationException>(() => strict.StepDpo().LoadModel(zip, out _));
            StringAssert.Contains(e.Message, "MLContext.GpuDeviceId is 4096 but no such CUDA device is available");
            StringAssert.Contains(e.Message, "FallbackToCpu");
            Assert.IsNull(LoadedBundles.Loaded(sha), "nothing loaded");

            var lenient = new MLContext(seed: 3) { GpuDeviceId = 4096, FallbackToCpu = true };
            var loaded = lenient.StepDpo().LoadModel(zip, out _);
            var rewards = Rewards(lenient, loaded);
            for (int i = 0; i < Inputs.Length; i++)
                CollectionAssert.AreEqual(scorer.Score(Inputs[i].prompt, Inputs[i].solution).Rewards, rewards[i], $"row {i}");
            Assert.IsInstanceOfType<StepScorer>(LoadedBundles.Loaded(sha), "on the CPU");
        }
        finally
        {
            StepScoringMapping.ClearCache();
            Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    public void OnTheMetaDeviceTheLoadedScorerHoldsEveryWeightThereAndItsForwardFailsOnlyForLackOfData()
    {
        var dir = Directory.CreateTempSubdirectory("stepdpo-device-").FullName;
        var meta = new torch.Device(DeviceType.META);
        try
        {
            var (_, zip, sha) = SavedScorer(dir, 91);
            var ml = new MLContext(seed: 2);
            ITransformer loaded;
            using (LoadedModelDevice.Use(meta)) // what LoadModel does with the context's device
                loaded = ml.Model.Load(zip, out _);
            Assert.IsNull(LoadedModelDevice.Current, "the device is named for that load only");
            var e = Assert.Throws<Exception>(() => Rewards(ml, loaded));
            while (e.InnerException is not null) e = e.InnerException;
            // No operation met a CPU tensor ("Expected all tensors to be on the same device"): the first failure is an
            // operator that libtorch cannot run without data (with libtorch 2.10: the embedding's index_select, which has
            // no meta kernel; SDPA's where and logsumexp's abs would be next).
            Assert.IsFalse(e.Message.Contains("same device", StringComparison.Ordinal), e.Message);
            StringAssert.Contains(e.Message, "Meta");

            var scorer = (StepScorer)LoadedBundles.Loaded(sha, meta)!;
            Assert.IsNull(LoadedBundles.Loaded(sha), "not loaded for the CPU");
            foreach (var model in new[] { scorer.Policy, scorer.Reference! })
            {
                Assert.AreEqual(DeviceType.META, model.Device.type);
                foreach (var (name, p) in model.named_parameters()) Assert.AreEqual(DeviceType.META, p.device_type, name);
            }
            // The control: the same mapping on the CPU scores.
            StepScoringMapping.ClearCache();
            var cpu = new MLContext(seed: 3);
            Assert.HasCount(Inputs.Length, Rewards(cpu, cpu.Model.Load(zip, out _)));
        }
        finally
        {
            StepScoringMapping.ClearCache();
            Directory.Delete(dir, true);
        }
    }
}
