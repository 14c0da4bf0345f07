using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

/// <summary>The decoding-step attention kernel equals SDPA over the masked cache (the plain path it replaces).</summary>
[TestClass]
public sealed class SlotAttentionTests
{
    [TestMethod]
    [DataRow(ScalarType.Float32, true, 32, 2e-6, DisplayName = "float32, AVX-512 where the CPU has it, head size 32")]
    [DataRow(ScalarType.Float32, true, 24, 2e-6, DisplayName = "float32, AVX2/FMA, head size 24")]
    [DataRow(ScalarType.Float32, true, 64, 2e-6, DisplayName = "float32, AVX2/FMA, head size 64")]
    [DataRow(ScalarType.Float32, false, 24, 2e-6, DisplayName = "float32, portable")]
    [DataRow(ScalarType.Float64, true, 24, 1e-13, DisplayName = "float64")]
    public void EqualsMaskedSdpaOverTheRowsValidSlots(ScalarType dtype, bool vectorized, int headSize, double tolerance)
    {
        SlotAttention.VectorizedEnabled = vectorized;
        try { Compare(dtype, headSize, tolerance); }
        finally { SlotAttention.VectorizedEnabled = true; }
    }

    [TestMethod]
    [DataRow(true, DisplayName = "with software prefetch")]
    [DataRow(false, DisplayName = "without")]
    public void TheHeadSize32PathOfTheAvx2PathAndTheWidePathEqualSdpa(bool prefetch)
    {
        // Head size 32 takes the AVX-512 path (query heads in pairs; 6 heads over 2 kv heads: three per kv head, so
        // a pair and a single) where the CPU has AVX-512F, else the AVX2 one; both are held to SDPA.
        SlotAttention.PrefetchEnabled = prefetch;
        SlotAttention.Wide512Enabled = false;
        try
        {
            Compare(ScalarType.Float32, 32, 2e-6);
            SlotAttention.Wide512Enabled = true;
            Compare(ScalarType.Float32, 32, 2e-6);
        }
        finally { SlotAttention.Wide512Enabled = true; SlotAttention.PrefetchEnabled = true; }
    }

    private static void Compare(ScalarType dtype, long d, double tolerance)
    {
        using var scope = torch.NewDisposeScope();
        var gen = new Generator(5);
        long n = 7, heads = 6, kv = 2, capacity = 40;
        var lengths = new long[] { 1, 40, 17, 3, 29, 40, 8 };
        var q = torch.randn(new[] { n, heads, 1, d }, generator: gen).to(dtype);
        var keys = torch.randn(new[] { n + 2, kv, capacity, d }, generator: gen).to(dtype);   // more cache rows than live ones
        var values = torch.randn(new[] { n + 2, kv, capacity, d }, generator: gen).to(dtype);

        // Row 4 reads its first 20 slots from row 1 (a shared prompt), whose slots are copied into row 4 for SDPA.
        var spans = lengths.Select((l, b) => new SlotSpan(b, 0, (int)l)).ToArray();
        spans[4] = new SlotSpan(1, 20, 29);
        var kernel = SlotAttention.Attend(q, keys, values, spans);
        keys[4].narrow(1, 0, 20).copy_(keys[1].narrow(1, 0, 20));
        values[4].narrow(1, 0, 20).copy_(values[1].narrow(1, 0, 20));

        // SDPA: the query heads of a kv group against its keys repeated, slots past each row's length masked.
        int rep = (int)(heads / kv);
        var k = keys.narrow(0, 0, n).repeat_interleave(rep, 1);
        var v = values.narrow(0, 0, n).repeat_interleave(rep, 1);
        var slots = torch.arange(capacity).unsqueeze(0);
        var mask = slots.lt(torch.tensor(lengths).unsqueeze(1)).view(n, 1, 1, capacity);
        var plain = F.scaled_dot_product_attention(q, k, v, attn_mask: mask);

        CollectionAssert.AreEqual(plain.shape, kernel.shape);
        double diff = (kernel - plain).abs().max().to(ScalarType.Float64).item<double>();
        Assert.IsLessThan(tolerance, diff, $"max |kernel - sdpa| = {diff}");
    }

    [TestMethod]
    public void UsesTorchsThreadCountWithTheSameResult()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new Generator(6);
        var q = torch.randn(new long[] { 33, 4, 1, 16 }, generator: gen);
        var keys = torch.randn(new long[] { 33, 2, 50, 16 }, generator: gen);
        var values = torch.randn(new long[] { 33, 2, 50, 16 }, generator: gen);
        var lengths = Enumerable.Range(0, 33).Select(i => new SlotSpan(i % 5 == 1 ? i - 1 : i, i % 5 == 1 ? Math.Min(i - 1, i % 50) : 0, 1 + i % 50)).ToArray();
        int saved = torch.get_num_threads();
        try
        {
            torch.set_num_threads(1);
            var one = SlotAttention.Attend(q, keys, values, lengths);
            torch.set_num_threads(2);
            var two = SlotAttention.Attend(q, keys, values, lengths);
            Assert.IsTrue(one.equal(two).all().item<bool>(), "rows are independent: threads change nothing");
        }
        finally
        {
            torch.set_num_threads(saved);
        }
    }
}
