using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

/// <summary>
/// The whole-sequence attention kernel (forward and backward) against the plain path: softmax(q·kᵀ/√d masked)·v
/// spelled out in fp64 on the same inputs, with the kv heads repeated per group, differentiated by autograd.
/// </summary>
[TestClass]
public sealed class SequenceAttentionTests
{
    [TestInitialize]
    public void RequireAvx512()
    {
        if (!System.Runtime.Intrinsics.X86.Avx512F.IsSupported) Assert.Inconclusive("The kernel needs AVX-512; SDPA serves this CPU.");
    }

    public enum MaskKind { Causal, PrefixShared, PaddedPrefixShared, SharedAcrossBatch }

    [TestMethod]
    [DataRow(MaskKind.Causal, 37, 64, DisplayName = "causal, T 37, head 64")]
    [DataRow(MaskKind.Causal, 1, 64, DisplayName = "causal, one token")]
    [DataRow(MaskKind.PrefixShared, 53, 64, DisplayName = "prefix-shared pairs, T 53")]
    [DataRow(MaskKind.PaddedPrefixShared, 70, 16, DisplayName = "prefix-shared with padding rows, head 16")]
    [DataRow(MaskKind.SharedAcrossBatch, 29, 80, DisplayName = "one mask for the batch, head 80 (64 + 16 columns)")]
    [DataRow(MaskKind.Causal, 130, 128, DisplayName = "causal, T 130, head 128")]
    public void Float32EqualsTheFp64PlainPath(MaskKind kind, int t, int d)
    {
        SequenceAttention.ServeFloat32 = true;
        try { Compare(ScalarType.Float32, kind, t, d); }
        finally { SequenceAttention.ServeFloat32 = false; }
    }

    [TestMethod]
    [DataRow(MaskKind.Causal, 45, 64, DisplayName = "bf16 causal")]
    [DataRow(MaskKind.PrefixShared, 61, 64, DisplayName = "bf16 prefix-shared")]
    [DataRow(MaskKind.PaddedPrefixShared, 50, 32, DisplayName = "bf16 prefix-shared with padding rows")]
    public void Bf16IsAtLeastAsExactAsSdpa(MaskKind kind, int t, int d) => Compare(ScalarType.BFloat16, kind, t, d);

    private static void Compare(ScalarType dtype, MaskKind kind, int t, int d)
    {
        using var scope = torch.NewDisposeScope();
        var gen = new Generator(11);
        int b = 3, heads = 6, kv = 2;
        var q = (torch.randn(new long[] { b, t, heads, d }, generator: gen) * 1.5).to(dtype).transpose(1, 2);   // views, as the model passes them
        var k = (torch.randn(new long[] { b, t, kv, d }, generator: gen) * 1.5).to(dtype).transpose(1, 2);
        var v = torch.randn(new long[] { b, t, kv, d }, generator: gen).to(dtype).transpose(1, 2);
        var gradOut = torch.randn(new long[] { b, t, heads * d }, generator: gen).to(dtype);
        var mask = Mask(kind, b, t);
        Assert.IsTrue(SequenceAttention.AppliesTo(q, k, mask));

        var (y, dq, dk, dv) = Run((q, k, v) => SequenceAttention.Attend(q, k, v, mask), q, k, v, gradOut);
        var (ry, rdq, rdk, rdv) = Run((q, k, v) => Plain(q.to(ScalarType.Float64), k.to(ScalarType.Float64), v.to(ScalarType.Float64), mask), q, k, v, gradOut.to(ScalarType.Float64));

        if (dtype == ScalarType.Float32)
        {
            foreach (var (got, want, what) in new[] { (y, ry, "output"), (dq, rdq, "dq"), (dk, rdk, "dk"), (dv, rdv, "dv") })
                AssertClose(got, want, 2e-5, what);
            return;
        }
        // bf16: the plain path's exact answer against ours and against libtorch's SDPA (flash) on the same bf16 inputs.
        var (sy, sdq, sdk, sdv) = Run((q, k, v) => Sdpa(q, k, v, mask), q, k, v, gradOut);
        foreach (var (got, sdpa, want, what) in new[] { (y, sy, ry, "output"), (dq, sdq, rdq, "dq"), (dk, sdk, rdk, "dk"), (dv, sdv, rdv, "dv") })
        {
            double ours = MaxError(got, want), theirs = MaxError(sdpa, want), scale = want.abs().max().item<double>();
            Assert.IsTrue(ours <= theirs * 1.05 + 1e-6 * scale, $"{what}: kernel error {ours:G3} > SDPA's {theirs:G3} (scale {scale:G3})");
            Assert.IsTrue(ours <= 0.02 * scale, $"{what}: kernel error {ours:G3} against scale {scale:G3}");
        }
    }

    private static (Tensor Y, Tensor Dq, Tensor Dk, Tensor Dv) Run(Func<Tensor, Tensor, Tensor, Tensor> attention, Tensor q, Tensor k, Tensor v, Tensor gradOut)
    {
        var (lq, lk, lv) = (q.detach().requires_grad_(true), k.detach().requires_grad_(true), v.detach().requires_grad_(true));
        var y = attention(lq, lk, lv);
        y.backward(new[] { gradOut });
        Assert.AreEqual(lq.dtype, lq.grad!.dtype);
        CollectionAssert.AreEqual(lq.shape, lq.grad!.shape);
        CollectionAssert.AreEqual(lk.shape, lk.grad!.shape);
        return (y.detach().to(ScalarType.Float64), lq.grad!.to(ScalarType.Float64), lk.grad!.to(ScalarType.Float64), lv.grad!.to(ScalarType.Float64));
    }

    /// <summary>softmax(q·kᵀ/√d, −∞ where the mask forbids)·v with kv heads repeated per group, as [B, T, H·D].</summary>
    private static Tensor Plain(Tensor q, Tensor k, Tensor v, Tensor? mask)
    {
        long b = q.shape[0], heads = q.shape[1], t = q.shape[2], d = q.shape[3], group = heads / k.shape[1];
        k = k.repeat_interleave(group, 1);
        v = v.repeat_interleave(group, 1);
        var allowed = mask ?? torch.ones(t, t, dtype: ScalarType.Bool).tril().expand(b, 1, t, t);
        var scores = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(d);
        scores = scores.masked_fill(allowed.logical_not(), double.NegativeInfinity);
        return scores.softmax(-1).matmul(v).transpose(1, 2).reshape(b, t, heads * d);
    }

    private static Tensor Sdpa(Tensor q, Tensor k, Tensor v, Tensor? mask)
    {
        long b = q.shape[0], heads = q.shape[1], t = q.shape[2], d = q.shape[3], group = heads / k.shape[1];
        k = k.repeat_interleave(group, 1);
        v = v.repeat_interleave(group, 1);
        var y = mask is null ? nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true) : nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: mask);
        return y.transpose(1, 2).reshape(b, t, heads * d);
    }

    /// <summary>
    /// The masks the model builds: causal (null), pairs packed as [prefix][chosen][rejected] with rejected queries
    /// blind to the chosen tail (different splits per row), the same with padding rows that attend only to themselves,
    /// and one causal-with-a-hole mask broadcast over the batch.
    /// </summary>
    private static Tensor? Mask(MaskKind kind, int b, int t)
    {
        if (kind == MaskKind.Causal) return null;
        int rows = kind == MaskKind.SharedAcrossBatch ? 1 : b;
        var m = new bool[rows, 1, t, t];
        for (int r = 0; r < rows; r++)
        {
            int end = kind == MaskKind.PaddedPrefixShared ? t - 7 * r : t;   // row r has 7·r padding positions
            int s = end / 2 - r, c = s + (end - s) / 2 + r;                   // prefix [0, s), chosen [s, c), rejected [c, end)
            for (int i = 0; i < t; i++)
            {
                if (i >= end) { m[r, 0, i, i] = true; continue; }
                for (int j = 0; j <= i; j++) m[r, 0, i, j] = !(i >= c && j >= s && j < c);
            }
        }
        return torch.tensor(m);
    }

    private static double MaxError(Tensor got, Tensor want) => (got - want).abs().max().item<double>();

    private static void AssertClose(Tensor got, Tensor want, double relative, string what)
    {
        double error = MaxError(got, want), scale = want.abs().max().item<double>();
        Assert.IsTrue(error <= relative * Math.Max(scale, 1), $"{what}: max error {error:G3} against scale {scale:G3}");
    }

    [TestMethod]
    [DataRow(ScalarType.Float32, 2e-4, DisplayName = "fp32 model")]
    [DataRow(ScalarType.BFloat16, 0.05, DisplayName = "bf16 model")]
    public void AModelsLogitsAndGradientsMatchTheSdpaPath(ScalarType dtype, double tolerance)
    {
        // A tiny Qwen2 (head size 16, grouped kv heads) on packed preference pairs (the prefix-shared mask) and on the
        // causal layout; a loss over every logit, backward; the same with the kernel switched off.
        using var scope = torch.NewDisposeScope();
        var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: 40, hidden: 64, heads: 4, kvHeads: 2), dtype, seed: 4, std: 0.2);
        var rng = new Random(2);
        int[] R(int n) => Enumerable.Range(0, n).Select(_ => rng.Next(1, 40)).ToArray();
        var pairs = Enumerable.Range(0, 3).Select(i => { var c = R(20 + 5 * i); return new TokenizedPair(c.Concat(R(6 + i)).ToArray(), c.Length, c.Concat(R(9 - i)).ToArray(), c.Length); }).ToList();
        foreach (var batch in new[] { PreferenceBatch.BuildPrefixShared(pairs), PreferenceBatch.BuildConcatenated(pairs) })
        {
            var (ids, pos, mask) = batch.ToTensors(torch.CPU);
            (Tensor Logits, Tensor[] Grads) Run(bool kernel)
            {
                SequenceAttention.Enabled = kernel;
                SequenceAttention.ServeFloat32 = kernel;
                try
                {
                    model.zero_grad();
                    var logits = model.Forward(ids, pos, mask);
                    (logits.to(ScalarType.Float32).log_softmax(-1) * torch.linspace(-1, 1, 40)).sum().backward();
                    return (logits.detach().to(ScalarType.Float64), model.parameters().Select(p => p.grad!.to(ScalarType.Float64)).ToArray());
                }
                finally { SequenceAttention.Enabled = true; SequenceAttention.ServeFloat32 = false; }
            }
            var (kernelLogits, kernelGrads) = Run(true);
            var (sdpaLogits, sdpaGrads) = Run(false);
            AssertClose(kernelLogits, sdpaLogits, tolerance, "logits");
            for (int i = 0; i < kernelGrads.Length; i++) AssertClose(kernelGrads[i], sdpaGrads[i], tolerance, $"gradient {i}");
        }
    }

    [TestMethod]
    public void RunsWithoutGradients()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new Generator(3);
        var q = torch.randn(new long[] { 2, 4, 9, 32 }, generator: gen).to(ScalarType.BFloat16);
        var k = torch.randn(new long[] { 2, 2, 9, 32 }, generator: gen).to(ScalarType.BFloat16);
        var v = torch.randn(new long[] { 2, 2, 9, 32 }, generator: gen).to(ScalarType.BFloat16);
        Tensor y;
        using (torch.no_grad()) y = SequenceAttention.Attend(q, k, v, null);
        var want = Plain(q.to(ScalarType.Float64), k.to(ScalarType.Float64), v.to(ScalarType.Float64), null);
        Assert.IsFalse(y.requires_grad);
        AssertClose(y.to(ScalarType.Float64), want, 1e-2, "output");
    }

    [TestMethod]
    public void ServesOnlyWhatItCan()
    {
        using var scope = torch.NewDisposeScope();
        Tensor Q(ScalarType dt, long d = 64, long t = 8, string device = "cpu") => torch.zeros(new long[] { 1, 4, t, d }, dtype: dt, device: new Device(device));
        var k = torch.zeros(new long[] { 1, 2, 8, 64 }, dtype: ScalarType.BFloat16);
        Assert.IsTrue(SequenceAttention.AppliesTo(Q(ScalarType.BFloat16), k, null));
        Assert.IsFalse(SequenceAttention.AppliesTo(Q(ScalarType.Float32), k.to(ScalarType.Float32), null), "fp32 keeps SDPA unless asked");
        Assert.IsFalse(SequenceAttention.AppliesTo(Q(ScalarType.Float64), k.to(ScalarType.Float64), null));
        Assert.IsFalse(SequenceAttention.AppliesTo(Q(ScalarType.BFloat16, d: 24), k.narrow(3, 0, 24), null), "head size not a multiple of 16");
        Assert.IsFalse(SequenceAttention.AppliesTo(Q(ScalarType.BFloat16, t: 1), k, null), "keys longer than queries (a cache)");
        Assert.IsFalse(SequenceAttention.AppliesTo(Q(ScalarType.BFloat16, device: "meta"), k.to(new Device("meta")), null));
        Assert.IsFalse(SequenceAttention.AppliesTo(Q(ScalarType.BFloat16), k, torch.zeros(1, 1, 8, 8)), "an additive float mask");
        Assert.IsFalse(SequenceAttention.AppliesTo(Q(ScalarType.BFloat16), k, torch.ones(1, 1, 1, 8, dtype: ScalarType.Bool)), "a mask broadcast over queries");
        SequenceAttention.Enabled = false;
        try { Assert.IsFalse(SequenceAttention.AppliesTo(Q(ScalarType.BFloat16), k, null)); }
        finally { SequenceAttention.Enabled = true; }
    }
}
