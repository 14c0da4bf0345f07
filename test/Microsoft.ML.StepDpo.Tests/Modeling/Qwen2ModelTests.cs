using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Tests.Modeling.ModelTestUtil;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

[TestClass]
public sealed class Qwen2ModelTests
{
    [ClassInitialize]
    public static void ClassInit(TestContext _) => SingleThread.Enter();

    [ClassCleanup]
    public static void ClassDone() => SingleThread.Exit();

    [TestMethod]
    [DataRow("qwen2")]
    [DataRow("llama")]
    public void LogitsMatchPlainMathReference(string type)
    {
        using var scope = torch.NewDisposeScope();
        var config = type == "qwen2" ? Qwen2Config.Tiny(vocab: 40, hidden: 32, layers: 2, heads: 4, kvHeads: 2) : Llama(vocab: 40);
        using var model = Qwen2ForCausalLM.CreateRandom(config, ScalarType.Float32, seed: 3);
        Scramble(model, 11);
        int[] ids = { 3, 17, 0, 39, 22, 5, 5, 12 };
        var logits = model.Forward(torch.tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0))[0];
        var expected = PlainQwen2Reference.Logits(config, Weights(model), ids);
        Assert.AreEqual(ids.Length, (int)logits.shape[0]);
        var ours = logits.to(ScalarType.Float64).data<double>().ToArray();
        double maxDiff = 0, maxAbs = 0;
        for (int t = 0; t < ids.Length; t++)
            for (int v = 0; v < config.VocabSize; v++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(ours[t * config.VocabSize + v] - expected[t][v]));
                maxAbs = Math.Max(maxAbs, Math.Abs(expected[t][v]));
            }
        Assert.IsGreaterThan(0.5, maxAbs, "logits should be non-trivial for the comparison to mean something");
        Assert.IsLessThan(1e-5, maxDiff, $"max |ours - reference| = {maxDiff}");
    }

    [TestMethod]
    public void ParameterNamesAndShapesEqualHuggingFace()
    {
        var c = Qwen2Config.Tiny(vocab: 50, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, tied: false);
        using var model = new Qwen2ForCausalLM(c, ScalarType.Float32);
        var shapes = model.named_parameters().ToDictionary(p => p.name, p => string.Join("x", p.parameter.shape));
        Assert.AreEqual("50x32", shapes["model.embed_tokens.weight"]);
        Assert.AreEqual("32x32", shapes["model.layers.1.self_attn.q_proj.weight"]);
        Assert.AreEqual("32", shapes["model.layers.1.self_attn.q_proj.bias"]);
        Assert.AreEqual("16x32", shapes["model.layers.1.self_attn.k_proj.weight"]);   // 2 kv heads × 8
        Assert.AreEqual("16", shapes["model.layers.0.self_attn.v_proj.bias"]);
        Assert.AreEqual("32x32", shapes["model.layers.0.self_attn.o_proj.weight"]);
        Assert.IsFalse(shapes.ContainsKey("model.layers.0.self_attn.o_proj.bias"));
        Assert.AreEqual("48x32", shapes["model.layers.0.mlp.gate_proj.weight"]);
        Assert.AreEqual("48x32", shapes["model.layers.0.mlp.up_proj.weight"]);
        Assert.AreEqual("32x48", shapes["model.layers.0.mlp.down_proj.weight"]);
        Assert.AreEqual("32", shapes["model.layers.0.input_layernorm.weight"]);
        Assert.AreEqual("32", shapes["model.layers.0.post_attention_layernorm.weight"]);
        Assert.AreEqual("32", shapes["model.norm.weight"]);
        Assert.AreEqual("50x32", shapes["lm_head.weight"]);
        Assert.AreEqual(2 + 2 * 12 + 1, shapes.Count);

        using var llama = new Qwen2ForCausalLM(Llama(), ScalarType.Float32);
        Assert.IsFalse(llama.named_parameters().Any(p => p.name.EndsWith(".bias", StringComparison.Ordinal)));
    }

    [TestMethod]
    [DataRow(4, 1)]
    [DataRow(4, 2)]
    [DataRow(4, 4)]
    public void GroupedQueryAttentionShapes(int heads, int kvHeads)
    {
        using var scope = torch.NewDisposeScope();
        var c = Qwen2Config.Tiny(vocab: 30, hidden: 32, layers: 1, heads: heads, kvHeads: kvHeads);
        using var model = Qwen2ForCausalLM.CreateRandom(c, ScalarType.Float32, seed: 1);
        Assert.AreEqual(kvHeads * 8L, model.named_parameters().Single(p => p.name == "model.layers.0.self_attn.k_proj.weight").parameter.shape[0]);
        var logits = model.Forward(torch.randint(0, 30, new long[] { 3, 7 }));
        CollectionAssert.AreEqual(new long[] { 3, 7, 30 }, logits.shape);
        // With one K/V head repeated, every query head must see the same keys: compare with the explicit reference.
        Scramble(model, 5);
        int[] ids = { 1, 2, 3, 4, 5 };
        var expected = PlainQwen2Reference.Logits(c, Weights(model), ids);
        var ours = model.Forward(torch.tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0))[0, -1].to(ScalarType.Float64).data<double>().ToArray();
        for (int v = 0; v < 30; v++) Assert.AreEqual(expected[^1][v], ours[v], 1e-5);
    }

    [TestMethod]
    public void TiedHeadIsOneParameterUpdatedOnce()
    {
        using var scope = torch.NewDisposeScope();
        var c = Qwen2Config.Tiny(vocab: 30, hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 32, tied: true);
        using var model = Qwen2ForCausalLM.CreateRandom(c, ScalarType.Float32, seed: 1);
        var ps = model.parameters().ToList();
        long numel = ps.Sum(p => p.numel());
        long expected = 30 * 16                                  // embedding = LM head
                        + (16 * 16 + 16) + 2 * (8 * 16 + 8) + 16 * 16 // q, k, v (+bias), o
                        + 3 * 16 * 32 + 2 * 16 + 16;             // mlp, 2 layer norms, final norm
        Assert.AreEqual(expected, numel);
        Assert.IsFalse(model.named_parameters().Any(p => p.name.StartsWith("lm_head", StringComparison.Ordinal)));

        // One SGD step changes the embedding by exactly -lr·grad (an aliased double registration would move it twice).
        var emb = model.Model.Embedding.Weight;
        var before = emb.detach().clone();
        var opt = torch.optim.SGD(model.parameters(), 0.5);
        var ids = torch.tensor(new long[] { 1, 2, 3, 4 }).unsqueeze(0);
        var lp = model.TokenLogProbs(ids, torch.tensor(new long[] { 2, 3, 4, 5 }).unsqueeze(0));
        (-lp.sum()).backward();
        var grad = emb.grad!.clone();
        // The gradient has both uses: rows never looked up (e.g. 20) still get one from the LM head.
        Assert.IsGreaterThan(0.0, grad[20].abs().sum().item<float>());
        opt.step();
        Assert.IsLessThan(1e-6, MaxAbsDiff(emb.detach(), before - 0.5 * grad));
    }

    [TestMethod]
    public void ExplicitMaskAndPositionsReproduceDefaultCausal()
    {
        using var scope = torch.NewDisposeScope();
        var c = Qwen2Config.Tiny();
        using var model = Qwen2ForCausalLM.CreateRandom(c, ScalarType.Float32, seed: 2);
        Scramble(model, 3);
        var ids = torch.randint(0, c.VocabSize, new long[] { 2, 9 });
        var plain = model.Forward(ids);
        var mask = torch.ones(9, 9, dtype: ScalarType.Bool).tril().expand(2, 1, 9, 9);
        var pos = torch.arange(9L).expand(2, 9);
        var explicitMask = model.Forward(ids, pos, mask);
        Assert.IsLessThan(1e-5, MaxAbsDiff(plain, explicitMask));

        // Prefix sharing: [prompt][a][b] with b's positions restarting after the prompt and b blind to a
        // gives b the same logits as running [prompt][b] alone.
        var prompt = new long[] { 1, 2, 3 }; var a = new long[] { 4, 5 }; var b = new long[] { 6, 7, 8 };
        var packed = torch.tensor(prompt.Concat(a).Concat(b).ToArray()).unsqueeze(0);
        var positions = torch.tensor(new long[] { 0, 1, 2, 3, 4, 3, 4, 5 }).unsqueeze(0);
        var m = torch.ones(8, 8, dtype: ScalarType.Bool).tril();
        m[TensorIndex.Slice(5, 8), TensorIndex.Slice(3, 5)] = torch.tensor(false);
        var shared = model.Forward(packed, positions, m.reshape(1, 1, 8, 8))[0, TensorIndex.Slice(5, 8)];
        var alone = model.Forward(torch.tensor(prompt.Concat(b).ToArray()).unsqueeze(0))[0, TensorIndex.Slice(3, 6)];
        Assert.IsLessThan(1e-5, MaxAbsDiff(shared, alone));
    }

    [TestMethod]
    public void TokenLogProbsEqualLogSoftmaxGather()
    {
        using var scope = torch.NewDisposeScope();
        using var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(), ScalarType.Float32, seed: 4);
        Scramble(model, 4);
        var ids = torch.randint(0, 64, new long[] { 2, 6 });
        var targets = torch.randint(0, 64, new long[] { 2, 6 });
        var lp = model.TokenLogProbs(ids, targets);
        var full = model.Forward(ids).log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
        Assert.IsLessThan(1e-5, MaxAbsDiff(lp, full));
    }

    [TestMethod]
    [DataRow(ScalarType.Float32)]
    [DataRow(ScalarType.BFloat16)]
    public void BothLogProbFormulationsEqualADoublePrecisionReference(ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(11);
        var logits = (torch.randn(3, 5, 97) * 4).to(dtype);
        var targets = torch.randint(0, 97, new long[] { 3, 5 });
        var upstream = torch.randn(3, 5);   // per-token weights, as a preference loss applies them
        var reference = logits.to(ScalarType.Float64).log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
        // Reference gradient in fp64: (one-hot − softmax), weighted per token by the upstream gradient.
        var probs = logits.to(ScalarType.Float64).softmax(-1);
        var oneHot = torch.zeros_like(probs).scatter_(-1, targets.unsqueeze(-1), torch.ones(3, 5, 1, dtype: ScalarType.Float64));
        var referenceGrad = (oneHot - probs) * upstream.to(ScalarType.Float64).unsqueeze(-1);

        foreach (var (name, gather) in new (string, Func<Tensor, Tensor, Tensor>)[]
                 { ("log_softmax", Qwen2ForCausalLM.GatherViaLogSoftmax), ("logsumexp", Qwen2ForCausalLM.GatherViaLogSumExp) })
        {
            var leaf = logits.detach().clone().requires_grad_(true);
            var lp = gather(leaf, targets);
            Assert.AreEqual(ScalarType.Float32, lp.dtype, name);
            Assert.IsLessThan(2e-5, MaxAbsDiff(lp, reference.to(ScalarType.Float32)), name);
            (lp * upstream).sum().backward();
            // fp32 gradients to 1e-5; a bf16 leaf's gradient is stored in bf16, so within one bf16 rounding (2^-8 relative).
            var err = (leaf.grad!.to(ScalarType.Float64) - referenceGrad).abs();
            var tol = dtype == ScalarType.BFloat16 ? referenceGrad.abs() * Math.Pow(2, -8) + 1e-6 : torch.full_like(referenceGrad, 1e-5);
            Assert.IsTrue(err.le(tol).all().item<bool>(), $"{name}: max gradient error {err.max().item<double>()}");
        }

        // The dispatcher: with autograd it returns the log_softmax form, without it the logsumexp one; equal values.
        var tracked = Qwen2ForCausalLM.GatherLogProbs(logits.detach().clone().requires_grad_(true), targets);
        Tensor untracked;
        using (torch.no_grad()) untracked = Qwen2ForCausalLM.GatherLogProbs(logits, targets);
        Assert.IsLessThan(2e-5, MaxAbsDiff(tracked, untracked));
    }

    [TestMethod]
    public void GradientCheckpointingGivesTheSameGradients()
    {
        using var scope = torch.NewDisposeScope();
        var c = Qwen2Config.Tiny(layers: 3);
        using var model = Qwen2ForCausalLM.CreateRandom(c, ScalarType.Float32, seed: 6);
        Scramble(model, 6, std: 0.2);
        model.train();
        var ids = torch.randint(0, 64, new long[] { 2, 10 });
        var targets = torch.randint(0, 64, new long[] { 2, 10 });
        Dictionary<string, Tensor> Grads(bool checkpoint)
        {
            model.zero_grad();
            model.GradientCheckpointing = checkpoint;
            var loss = -model.TokenLogProbs(ids, targets).mean();
            loss.backward();
            return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        }
        var plain = Grads(false);
        var ckpt = Grads(true);
        Assert.AreEqual(plain.Count, ckpt.Count);
        foreach (var (name, g) in plain)
        {
            Assert.IsGreaterThan(0.0, g.abs().sum().item<float>(), name);
            Assert.IsLessThan(1e-5, MaxAbsDiff(g, ckpt[name]), name);
        }
    }

    [TestMethod]
    public void Bf16ForwardTracksFp32()
    {
        using var scope = torch.NewDisposeScope();
        var c = Qwen2Config.Tiny();
        using var f32 = Qwen2ForCausalLM.CreateRandom(c, ScalarType.Float32, seed: 7);
        Scramble(f32, 7, std: 0.1);
        using var bf16 = new Qwen2ForCausalLM(c, ScalarType.BFloat16);
        using (torch.no_grad())
            foreach (var (name, p) in bf16.named_parameters())
                p.copy_(f32.named_parameters().Single(q => q.name == name).parameter);
        var ids = torch.randint(0, 64, new long[] { 1, 8 });
        var a = f32.Forward(ids);
        var b = bf16.Forward(ids);
        Assert.AreEqual(ScalarType.BFloat16, b.dtype);
        double scale = a.abs().max().item<float>();
        Assert.IsLessThan(0.05 * scale, MaxAbsDiff(a, b));
    }
}
