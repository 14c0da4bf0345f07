using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

/// <summary>
/// Device placement without a GPU: the real code paths run on TorchSharp's <c>meta</c> device (shapes and dtypes, no
/// data), where any operation mixing a meta tensor with a tensor created on the CPU fails ("Expected all tensors to be on
/// the same device"). A path passes when it completes on meta, or stops only where it must read values ("Cannot copy out
/// of meta tensor; no data!": a token id, a log-probability) — never at a device mismatch.
/// </summary>
[TestClass]
public sealed class MetaDevicePlacementTests
{
    private static readonly Device Meta = new(DeviceType.META);
    private static readonly PromptTemplate Template = new("task", "Q: {instruction}\nA:", " ");

    [ClassInitialize]
    public static void Init(TestContext _) => TorchRuntime.EnsureLoaded();

    private static ByteLevelBpeTokenizer Tok() => CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);

    private static Qwen2Config Config(ByteLevelBpeTokenizer tok, bool tied = true) =>
        Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64, tied: tied);

    private static TokenizedPair[] Pairs(ByteLevelBpeTokenizer tok)
    {
        var builder = new PreferencePairBuilder(tok, Template, 128, 96, appendEos: false);
        return builder.Build(new[]
        {
            new PreferenceRow("Mia has 3 pens. Mia gets 4 more.", "Let's think step by step.\nStep 1:", " 3+4=7.", " 3+4=8."),
            new PreferenceRow("Ava has 2 boxes of 6.", "Let's think step by step.\nStep 1: 2*6=12.\nStep 2:", " 12+1=13.", " 12+1=14 pens."),
        }, new PairBuildReport()).ToArray();
    }

    // Where a path on meta may stop: reading a value on the host, or sampling (libtorch has no meta multinomial).
    private static void AssertStoppedAtAValueRead(Exception e, string where)
    {
        var all = string.Join(" | ", Chain(e).Select(x => x.Message));
        Assert.DoesNotContain("same device", all, all);
        Assert.IsTrue(all.Contains("Cannot copy out of meta tensor; no data!", StringComparison.Ordinal)
                      || all.StartsWith("aten::multinomial:", StringComparison.Ordinal), $"expected the path to stop only at a value read or at sampling: {all}");
        StringAssert.Contains(e.ToString(), where, e.ToString());
    }

    private static IEnumerable<Exception> Chain(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            yield return e;
            if (e is AggregateException a) foreach (var inner in a.InnerExceptions.SelectMany(Chain)) yield return inner;
        }
    }

    [TestMethod]
    [DataRow(false, false, true)]   // full fine-tune: every weight trains
    [DataRow(true, false, true)]    // LoRA: adapters only
    [DataRow(false, true, false)]   // gradient checkpointing, untied LM head
    public void ATrainingStepsForwardLogProbsAndBackwardRunOnMeta(bool lora, bool checkpointing, bool tied)
    {
        var tok = Tok();
        using var model = Qwen2ForCausalLM.CreateRandom(Config(tok, tied), ScalarType.Float32, Meta, seed: 1);
        if (lora) LoraAdapters.Apply(model, new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0.1 });
        model.GradientCheckpointing = checkpointing;
        var trainingModel = new Qwen2TrainingModel(model);
        trainingModel.SetTraining(true);
        var pairs = Pairs(tok);
        foreach (bool prefixSharing in new[] { true, false })
        {
            using var scope = torch.NewDisposeScope();
            // What PreferenceObjective.Compute does before its metrics read values.
            var layout = prefixSharing ? PreferenceBatch.BuildPrefixShared(pairs) : PreferenceBatch.BuildConcatenated(pairs);
            var (ids, pos, mask) = layout.ToTensors(trainingModel.Device);
            var hidden = trainingModel.ForwardHidden(ids, pos, mask);
            var (lp, meanChosen, meanRejected) = ResponseLogProbs.Compute(hidden, layout, trainingModel.ProjectToLogits);
            var cache = ReferenceLogProbs.FromValues(new[] { -3.0, -4.0 }, new[] { -5.0, -6.0 });
            var (refChosen, refRejected) = cache.Select(new[] { 0, 1 }, lp.Chosen.dtype, trainingModel.Device);
            foreach (var t in new[] { hidden, lp.Chosen, lp.Rejected, lp.ChosenTokens, meanChosen, meanRejected, refChosen, refRejected })
                Assert.AreEqual(DeviceType.META, t.device_type);
            var chosenLogRatio = lp.Chosen - refChosen;
            var rejectedLogRatio = lp.Rejected - refRejected;
            (chosenLogRatio - rejectedLogRatio).sum().backward();
            var trainable = trainingModel.TrainableParameters().ToList();
            Assert.IsNotEmpty(trainable);
            foreach (var p in trainable)
            {
                Assert.IsNotNull(p.grad, "every trainable weight receives a gradient");
                Assert.AreEqual(DeviceType.META, p.grad.device_type);
            }
            foreach (var p in trainable) p.grad = null;
        }
    }

    [TestMethod]
    public void GenerationsKvCachePrefillRunsOnMetaUpToReadingTheFirstToken()
    {
        var tok = Tok();
        using var model = Qwen2ForCausalLM.CreateRandom(Config(tok), ScalarType.Float32, Meta, seed: 1);
        var generator = new TextGenerator(model, ids => tok.Decode(ids));
        // Prompts of different lengths: left padding, the padding mask, per-row positions and the KV cache all on meta;
        // the sampled id is then read on the host, which meta cannot do.
        var prompts = new[] { tok.Encode("Q: 1+2?\nA:"), tok.Encode("Q: 10+20+30?\nA:") };
        foreach (var options in new[] { new GenerationOptions { MaxNewTokens = 4, Temperature = 0 }, new GenerationOptions { MaxNewTokens = 4, Temperature = 0.8, TopK = 5, TopP = 0.9 } })
        {
            var e = Assert.ThrowsExactly<System.Runtime.InteropServices.ExternalException>(() => generator.Generate(prompts, options));
            AssertStoppedAtAValueRead(e, "TextGenerator.Generate");
        }
        // One decoding step through the cache, as Generate's loop makes it (position offset, key mask over cache slots).
        using var cache = new KvCache(model.Config, 2, 16, ScalarType.Float32, Meta);
        using var noGrad = torch.no_grad();
        var first = model.Hidden(torch.zeros(2, 5, dtype: ScalarType.Int64, device: Meta), null, null, cache, 0);
        var step = model.Hidden(torch.zeros(2, 1, dtype: ScalarType.Int64, device: Meta), torch.full(2, 1, 5L, dtype: ScalarType.Int64, device: Meta),
            torch.ones(2, 1, 1, 6, dtype: ScalarType.Bool, device: Meta), cache, 5);
        Assert.AreEqual(DeviceType.META, model.Logits(step).device_type);
        CollectionAssert.AreEqual(new long[] { 2, 5, 32 }, first.shape);
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void StepDpoFitLoadsTheFolderAndComputesReferenceLogProbsOnTheContextsDevice(bool lora)
    {
        // The trainer's device comes from MLContext (TorchDevice.Select); the override stands in for a GPU.
        var tok = Tok();
        string dir = Path.Combine(Path.GetTempPath(), "stepdpo-meta-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var cpuModel = Qwen2ForCausalLM.CreateRandom(Config(tok), ScalarType.Float32, seed: 2))
                ModelCheckpoint.Save(cpuModel, dir);
            tok.Save(dir);
            var ml = new MLContext(seed: 1);
            var rows = new[]
            {
                new { prompt = "Mia has 3 pens.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 3+4=7.", rejected = " 3+4=8." },
                new { prompt = "Ben has 5 cards.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 5-2=3.", rejected = " 5-2=4." },
            };
            var data = ml.Data.LoadFromEnumerable(rows.Select(r => new Pair { prompt = r.prompt, initial_reason_steps = r.initial_reason_steps, chosen = r.chosen, rejected = r.rejected }));
            var trainer = ml.StepDpo().Trainers.StepDpo(new StepDpoTrainer.Options
            {
                BaseModelPath = dir, Template = Template, Epochs = 1, BatchSize = 2, MaxLength = 128, MaxPromptLength = 96, Seed = 1,
                UseLora = lora, GradientCheckpointing = true,
            });
            using (TorchDevice.Override(Meta))
            {
                var e = Assert.ThrowsExactly<System.Runtime.InteropServices.ExternalException>(() => trainer.Fit(data));
                AssertStoppedAtAValueRead(e, "ReferenceLogProbs");
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    public sealed class Pair
    {
        public string prompt { get; set; } = "";
        public string initial_reason_steps { get; set; } = "";
        public string chosen { get; set; } = "";
        public string rejected { get; set; } = "";
    }

    [TestMethod]
    public async Task LocalModelCompletionSourceLoadsOnTheContextsDevice()
    {
        var tok = Tok();
        string dir = Path.Combine(Path.GetTempPath(), "stepdpo-meta-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var cpuModel = Qwen2ForCausalLM.CreateRandom(Config(tok), ScalarType.Float32, seed: 2))
                ModelCheckpoint.Save(cpuModel, dir);
            tok.Save(dir);
            var request = new CompletionRequest("Mia has 3 pens.", "Let's think step by step.\nStep 1:", 2, new SamplingSettings { MaxNewTokens = 3, Seed = 1 });

            // GpuDeviceId without a CUDA backend: refused unless FallbackToCpu, as the trainers do.
            var gpu = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = false };
            Assert.ThrowsExactly<InvalidOperationException>(() => LocalModelCompletionSource.Load(gpu, dir, Template));
            var fallback = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = true };
            using (var cpu = LocalModelCompletionSource.Load(fallback, dir, Template))
                Assert.HasCount(2, await cpu.CompleteAsync(request));

            using (TorchDevice.Override(Meta))
            {
                using var onMeta = LocalModelCompletionSource.Load(new MLContext(seed: 1), dir, Template);
                var e = await Assert.ThrowsExactlyAsync<System.Runtime.InteropServices.ExternalException>(() => onMeta.CompleteAsync(request));
                AssertStoppedAtAValueRead(e, "ContinuousBatchGenerator.Sample");   // after the prefill, at the sampled tokens
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    public async Task LocalChatClientLoadsOnTheContextsDevice()
    {
        var tok = Tok();
        string dir = Path.Combine(Path.GetTempPath(), "stepdpo-meta-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var cpuModel = Qwen2ForCausalLM.CreateRandom(Config(tok), ScalarType.Float32, seed: 3))
                ModelCheckpoint.Save(cpuModel, dir);
            tok.Save(dir);
            var messages = new[] { new Microsoft.Extensions.AI.ChatMessage(Microsoft.Extensions.AI.ChatRole.User, "Mia has 3 pens.") };
            var options = new Microsoft.Extensions.AI.ChatOptions { MaxOutputTokens = 4 };

            // GpuDeviceId without a CUDA backend: refused unless FallbackToCpu, as the trainers do.
            var gpu = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = false };
            var refused = Assert.ThrowsExactly<InvalidOperationException>(() => LocalChatClient.Load(gpu, dir));
            StringAssert.Contains(refused.Message, "GpuDeviceId");
            Assert.ThrowsExactly<InvalidOperationException>(() => LocalChatClient.Load(gpu, dir, m => string.Concat(m.Select(x => x.Text)), null));
            var fallback = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = true };
            string onCpu;
            using (var cpu = LocalChatClient.Load(fallback, dir))
                onCpu = (await cpu.GetResponseAsync(messages, options)).Text;
            using (var plain = LocalChatClient.Load(dir))
                Assert.AreEqual((await plain.GetResponseAsync(messages, options)).Text, onCpu, "the same model and template as the path-only overload");

            using (TorchDevice.Override(Meta))
            {
                using var onMeta = LocalChatClient.Load(new MLContext(seed: 1), dir);
                var e = await Assert.ThrowsExactlyAsync<System.Runtime.InteropServices.ExternalException>(() => onMeta.GetResponseAsync(messages, options));
                AssertStoppedAtAValueRead(e, "TextGenerator.Generate");
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    public void TheShapeOnlyAttentionIsSdpasMath()
    {
        // The meta device's attention (SDPA has no meta kernel) computes what SDPA computes, on the CPU.
        torch.manual_seed(1);
        var q = torch.randn(2, 4, 5, 8, dtype: ScalarType.Float64);
        var k = torch.randn(2, 4, 5, 8, dtype: ScalarType.Float64);
        var v = torch.randn(2, 4, 5, 8, dtype: ScalarType.Float64);
        var mask = torch.rand(2, 1, 5, 5).gt(0.4) | torch.eye(5, dtype: ScalarType.Bool).unsqueeze(0).unsqueeze(0);
        var causal = Qwen2Attention.ShapeOnlyAttention(q, k, v, null, causal: true);
        Assert.IsTrue(causal.allclose(nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true), rtol: 1e-9, atol: 1e-9));
        var masked = Qwen2Attention.ShapeOnlyAttention(q, k, v, mask, causal: false);
        Assert.IsTrue(masked.allclose(nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: mask), rtol: 1e-9, atol: 1e-9));
    }
}
