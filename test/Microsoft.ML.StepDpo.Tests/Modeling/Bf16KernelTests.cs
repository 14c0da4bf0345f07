using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Tests.Modeling.ModelTestUtil;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

/// <summary>
/// The bf16 decoding kernel (<see cref="Bf16MatVec"/> behind <see cref="InferenceLinear"/>) against torch's
/// bf16 <c>F.linear</c> and an fp64 reference, on shapes that exercise every loop tail, and in the model.
/// </summary>
[TestClass]
public sealed class Bf16KernelTests
{
    // In-features not multiples of 8/16 (tails), below one block, exactly one block, and several blocks + tail.
    private static readonly (int N, int K)[] Shapes = { (37, 5), (19, 23), (64, 16), (33, 47), (130, 300), (7, 1000) };
    private static readonly int[] RowCounts = { 1, 2, 3, 4, 7 };
    private static readonly int[] Widths = { 256, 128, 0 };

    private static int savedThreads;

    [ClassInitialize]
    public static void ClassInit(TestContext _)
    {
        TorchRuntime.EnsureLoaded();
        // Two threads: the multi-threaded partition of output columns is what decoding uses.
        savedThreads = torch.get_num_threads();
        torch.set_num_threads(2);
    }

    [ClassCleanup]
    public static void ClassDone() => torch.set_num_threads(savedThreads);

    [TestCleanup]
    public void Restore()
    {
        InferenceLinear.Bf16KernelEnabled = true;
        Bf16MatVec.Width = Vector256IsAccelerated ? 256 : System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated ? 128 : 0;
    }

    private static bool Vector256IsAccelerated => System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated;

    private static Tensor Kernel(Tensor x, Tensor w, Tensor? b)
    {
        using var _ = torch.no_grad();
        Assert.IsTrue(InferenceLinear.UsesKernel(x, w, b), "the operands should take the kernel");
        return InferenceLinear.Linear(x, w, b);
    }

    private static Tensor Plain(Tensor x, Tensor w, Tensor? b)
    {
        using var _ = torch.no_grad();
        return F.linear(x, w, b);
    }

    [TestMethod]
    public void IntegerValuedProductsEqualTorchBitForBit()
    {
        // Small integers times 1/16: every product and partial sum is exact in fp32, so summation order cannot
        // matter and the one rounding to bf16 must agree with torch's bf16 addmm exactly, bias included.
        using var scope = torch.NewDisposeScope();
        var gen = new Generator(11);
        foreach (int width in Widths)
        {
            Bf16MatVec.Width = width;
            foreach (var (n, k) in Shapes)
                foreach (int rows in RowCounts)
                    foreach (bool withBias in new[] { false, true })
                    {
                        var w = (torch.randint(-8, 9, new long[] { n, k }, generator: gen) / 16.0).to(ScalarType.BFloat16);
                        var x = torch.randint(-8, 9, new long[] { rows, k }, generator: gen).to(ScalarType.BFloat16);
                        var b = withBias ? torch.randint(-100, 101, new long[] { n }, generator: gen).to(ScalarType.BFloat16) : null;
                        var fast = Kernel(x, w, b);
                        var plain = Plain(x, w, b);
                        Assert.IsTrue(fast.equal(plain).all().item<bool>(), $"width {width}, N={n} K={k} rows={rows} bias={withBias}: differs from torch");
                    }
        }
    }

    [TestMethod]
    public void RandomWeightsAreWithinOneRoundingOfTheExactProduct()
    {
        // Gaussian values: fp32 sums in a different order differ by at most γ_K·Σ|x·w| (γ_K = K·2⁻²⁴), so the
        // kernel's bf16 output lies within half a bf16 ulp of the exact fp64 result plus that accumulation bound,
        // and at most one bf16 ulp from torch's (which rounds its own fp32 sum once).
        using var scope = torch.NewDisposeScope();
        var gen = new Generator(12);
        long total = 0, differing = 0;
        foreach (int width in Widths)
        {
            Bf16MatVec.Width = width;
            foreach (var (n, k) in Shapes)
                foreach (int rows in RowCounts)
                    foreach (bool withBias in new[] { false, true })
                    {
                        var w = (torch.randn(n, k, generator: gen) * 0.05).to(ScalarType.BFloat16);
                        var x = torch.randn(rows, k, generator: gen).to(ScalarType.BFloat16);
                        var b = withBias ? (torch.randn(n, generator: gen) * 0.1).to(ScalarType.BFloat16) : null;
                        var fast = Kernel(x, w, b).to(ScalarType.Float64);
                        var plain = Plain(x, w, b).to(ScalarType.Float64);

                        var x64 = x.to(ScalarType.Float64); var w64 = w.to(ScalarType.Float64);
                        var exact = x64.matmul(w64.t()) + (b is null ? 0.0 : b.to(ScalarType.Float64));
                        var absSum = x64.abs().matmul(w64.abs().t()) + (b is null ? 0.0 : b.to(ScalarType.Float64).abs());
                        var ulp = BfloatUlp(exact);
                        var bound = ulp / 2 + k * Math.Pow(2, -24) * absSum + 1e-30;
                        var excess = ((fast - exact).abs() - bound).max().item<double>();
                        Assert.IsTrue(excess <= 0, $"width {width}, N={n} K={k} rows={rows}: {excess} beyond the rounding bound");

                        var gap = (fast - plain).abs();
                        Assert.IsTrue((gap - torch.maximum(BfloatUlp(fast), BfloatUlp(plain))).max().item<double>() <= 0,
                            $"width {width}, N={n} K={k} rows={rows}: more than one bf16 ulp from torch");
                        total += gap.numel();
                        differing += gap.gt(0).sum().item<long>();
                    }
        }
        // Ties within accumulation error are rare: almost every output is torch's, bit for bit.
        Assert.IsTrue(differing <= total / 100, $"{differing} of {total} outputs differ from torch by one ulp");
    }

    /// <summary>The spacing of bf16 numbers at |v| (8 significant bits): 2^(floor(log2|v|) − 7).</summary>
    private static Tensor BfloatUlp(Tensor v) =>
        torch.pow(2.0, torch.floor(torch.log2(v.abs().clamp_min(1e-30))) - 7);

    [TestMethod]
    public void NonContiguousAndBatchedInputsMatchTheirContiguousRows()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new Generator(13);
        var w = (torch.randn(45, 29, generator: gen) * 0.1).to(ScalarType.BFloat16);
        var b = torch.randn(45, generator: gen).to(ScalarType.BFloat16);
        var wide = torch.randn(29, 6, generator: gen).to(ScalarType.BFloat16);
        var x = wide.t().narrow(0, 1, 4);                            // [4,29], a strided view
        Assert.IsFalse(x.is_contiguous());
        var fromView = Kernel(x, w, b);
        var fromCopy = Kernel(x.contiguous(), w, b);
        Assert.IsTrue(fromView.equal(fromCopy).all().item<bool>());
        // [B,T,K] inputs keep their leading shape and give the same rows as the flat [B·T,K] product.
        var batched = Kernel(x.contiguous().view(2, 2, 29), w, b);
        CollectionAssert.AreEqual(new long[] { 2, 2, 45 }, batched.shape);
        Assert.IsTrue(batched.view(4, 45).equal(fromCopy).all().item<bool>());
        Assert.AreEqual(ScalarType.BFloat16, fromView.dtype);
    }

    [TestMethod]
    public void KernelIsTakenOnlyForSmallBf16InferenceProducts()
    {
        using var scope = torch.NewDisposeScope();
        var w = torch.randn(8, 16).to(ScalarType.BFloat16);
        var x = torch.randn(3, 16).to(ScalarType.BFloat16);
        using (torch.no_grad())
        {
            Assert.IsTrue(InferenceLinear.UsesKernel(x, w, null));
            Assert.IsTrue(InferenceLinear.UsesKernel(torch.randn(InferenceLinear.MaxKernelRows, 16).to(ScalarType.BFloat16), w, null));
            Assert.IsFalse(InferenceLinear.UsesKernel(torch.randn(InferenceLinear.MaxKernelRows + 1, 16).to(ScalarType.BFloat16), w, null), "too many rows");
            Assert.IsFalse(InferenceLinear.UsesKernel(x.to(ScalarType.Float32), w.to(ScalarType.Float32), null), "fp32");
            Assert.IsFalse(InferenceLinear.UsesKernel(x, w.t().contiguous().t(), null), "non-contiguous weight");
            InferenceLinear.Bf16KernelEnabled = false;
            Assert.IsFalse(InferenceLinear.UsesKernel(x, w, null), "switched off");
            InferenceLinear.Bf16KernelEnabled = true;
        }
        // With autograd on (training), torch's linear runs and the result carries a gradient.
        Assert.IsTrue(torch.is_grad_enabled());
        var wg = w.detach().requires_grad_(true);
        Assert.IsFalse(InferenceLinear.UsesKernel(x, wg, null));
        var y = InferenceLinear.Linear(x, wg, null);
        Assert.IsTrue(y.requires_grad);
        Assert.IsTrue(y.detach().equal(F.linear(x, w, null)).all().item<bool>());
    }

    private static Qwen2ForCausalLM Bf16Model(bool tied, long seed, double std = 0.1)
    {
        // Hidden 40 and intermediate 72: not multiples of 16, so the kernel's tails run in every projection;
        // scrambled norms and q/k/v biases, so a dropped term would show.
        var config = Qwen2Config.Tiny(vocab: 96, hidden: 40, layers: 2, heads: 4, kvHeads: 2, intermediate: 72, tied: tied);
        var m = Qwen2ForCausalLM.CreateRandom(config, ScalarType.BFloat16, seed: seed);
        Scramble(m, seed, std: std);
        return m;
    }

    private static readonly int[][] Prompts = { new[] { 5, 17, 3, 60 }, new[] { 2 }, new[] { 90, 1, 44, 44, 12, 7, 33 } };

    private static (IReadOnlyList<GenerationResult> Fast, IReadOnlyList<GenerationResult> Plain) BothPaths(Qwen2ForCausalLM model, IReadOnlyList<int[]> prompts)
    {
        var gen = new TextGenerator(model);
        var options = new GenerationOptions { MaxNewTokens = 10 };
        var fast = gen.Generate(prompts, options);
        InferenceLinear.Bf16KernelEnabled = false;
        try { return (fast, gen.Generate(prompts, options)); }
        finally { InferenceLinear.Bf16KernelEnabled = true; }
    }

    /// <summary>Logits of one forward pass with the kernel and without (prefill-sized: rows ≤ MaxKernelRows take the kernel).</summary>
    private static (Tensor Fast, Tensor Plain) BothForwards(Qwen2ForCausalLM model, Tensor ids)
    {
        using var _ = torch.no_grad();
        var fast = model.Forward(ids).to(ScalarType.Float64);
        InferenceLinear.Bf16KernelEnabled = false;
        try { return (fast, model.Forward(ids).to(ScalarType.Float64)); }
        finally { InferenceLinear.Bf16KernelEnabled = true; }
    }

    [TestMethod]
    public void GreedyGenerationOfABf16ModelMatchesThePlainPath()
    {
        // bf16 logits tie or nearly tie now and then (8 significant bits), and a one-ulp difference in a hidden
        // state can then pick the other token; these fixtures have no such near-tie on their greedy paths.
        foreach (var (tied, seed) in new[] { (true, 21L), (false, 24L) })
        {
            using var model = Bf16Model(tied, seed);
            var seen = new HashSet<int>();
            foreach (var p in Prompts)
            {
                var (fast, plain) = BothPaths(model, new[] { p });
                CollectionAssert.AreEqual(plain[0].Tokens, fast[0].Tokens, $"tied={tied}, prompt [{string.Join(",", p)}]");
                seen.UnionWith(plain[0].Tokens);
            }
            Assert.IsTrue(seen.Count >= 6, "a degenerate fixture (a few repeated tokens) would prove little");
            // All three at once: left-padded rows, three rows per decoding step.
            var (fastBatch, plainBatch) = BothPaths(model, Prompts);
            for (int i = 0; i < Prompts.Length; i++)
                CollectionAssert.AreEqual(plainBatch[i].Tokens, fastBatch[i].Tokens, $"tied={tied}, batch row {i}");
        }
    }

    [TestMethod]
    public void Bf16ModelLogitsAreAsAccurateAsThePlainPath()
    {
        // Larger weights than the generation fixtures: logits of order 10, where bf16 steps are 1/16. Against
        // the same weights run in fp32, the kernel path must be about as accurate as torch's bf16 path (the
        // two differ only in summation order before each rounding); a wiring error (a dropped bias, a wrong
        // row) would be off by the logits' own scale.
        using var scope = torch.NewDisposeScope();
        var ids = torch.tensor(new long[,] { { 5, 17, 3, 60, 9, 9, 81, 22 }, { 13, 40, 41, 3, 2, 2, 70, 95 } });
        foreach (bool tied in new[] { true, false })
        {
            using var model = Bf16Model(tied, seed: 31, std: 0.4);
            var (fast, plain) = BothForwards(model, ids);
            using var wide = Qwen2ForCausalLM.CreateRandom(model.Config, ScalarType.Float32, seed: 0);
            using (torch.no_grad())
                foreach (var ((_, dst), (_, src)) in wide.named_parameters().Zip(model.named_parameters()))
                    dst.copy_(src.to(ScalarType.Float32));
            Tensor reference;
            using (torch.no_grad()) reference = wide.Forward(ids).to(ScalarType.Float64);
            double scale = reference.abs().max().item<double>();
            double errFast = MaxAbsDiff(fast, reference), errPlain = MaxAbsDiff(plain, reference);
            Assert.IsTrue(scale > 3, "the fixture should have logits of order 10");
            Assert.IsTrue(errFast <= 1.5 * errPlain, $"tied={tied}: kernel path error {errFast}, torch bf16 path error {errPlain} (logit scale {scale})");
        }
    }

    [TestMethod]
    public void LoraAdapterStillAppliesOnTopOfTheKernel()
    {
        using var model = Bf16Model(tied: true, seed: 23);
        LoraAdapters.Apply(model, new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0, TargetModules = new[] { "q_proj", "v_proj", "down_proj" } });
        using (torch.no_grad())
            foreach (var (_, lin) in model.Projections().Where(p => p.Linear.HasAdapter))
                lin.LoraB!.normal_(0, 0.3);   // a non-zero adapter, so it visibly changes the output
        using var scope = torch.NewDisposeScope();
        var ids = torch.tensor(new long[,] { { 5, 17, 3, 60 } });
        var (fast, plain) = BothForwards(model, ids);
        Tensor baseOnly;
        using (LoraAdapters.Disable(model))
        using (torch.no_grad())
            baseOnly = model.Forward(ids).to(ScalarType.Float64);
        double scale = plain.abs().max().item<double>();
        Assert.IsTrue(MaxAbsDiff(fast, plain) <= 0.04 * scale, $"kernel vs plain: {MaxAbsDiff(fast, plain)} at logit scale {scale}");
        Assert.IsTrue(MaxAbsDiff(plain, baseOnly) > 0.2 * scale, "the adapter should change the logits");
    }

    [TestMethod]
    public void Fp32ModelsAndTrainingStayOnTorch()
    {
        using var scope = torch.NewDisposeScope();
        using var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: 50), ScalarType.Float32, seed: 24);
        var ids = torch.tensor(new long[,] { { 1, 2, 3 } });
        Tensor a, b;
        using (torch.no_grad())
        {
            a = model.Forward(ids);
            InferenceLinear.Bf16KernelEnabled = false;
            b = model.Forward(ids);
            InferenceLinear.Bf16KernelEnabled = true;
        }
        Assert.IsTrue(a.equal(b).all().item<bool>(), "an fp32 model must not depend on the bf16 switch");

        // A bf16 model with gradients on: torch's linear, so backward reaches every weight.
        using var bf = Bf16Model(tied: true, seed: 25);
        var logp = bf.TokenLogProbs(ids, torch.tensor(new long[,] { { 2, 3, 4 } }));
        logp.sum().backward();
        Assert.IsTrue(bf.parameters().All(p => p.grad is not null), "every parameter gets a gradient");
    }
}
