using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Tests.Modeling.ModelTestUtil;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

/// <summary>
/// The LoRA adapters' dropout: a SplitMix64 mask instead of libtorch's one-thread Bernoulli fill. Checked against a plain
/// element-by-element construction of torch's formula (noise = bernoulli(1 − p) / (1 − p) in the input dtype, then
/// input · noise), SplitMix64's published outputs, the Bernoulli statistics, gradients and reproducibility.
/// </summary>
[TestClass]
public sealed class CounterDropoutTests
{
    [ClassInitialize]
    public static void ClassInit(TestContext _) => SingleThread.Enter();

    [ClassCleanup]
    public static void ClassDone() => SingleThread.Exit();

    [TestMethod]
    public void TheStreamIsSplitMix64()
    {
        // SplitMix64 seeded with 0 (Steele, Lea & Flood 2014; the reference C code's first outputs).
        Assert.AreEqual(0xE220A8397B1DCDAFUL, CounterDropout.Draw(0, 0));
        Assert.AreEqual(0x6E789E6AA1B965F4UL, CounterDropout.Draw(0, 1));
        Assert.AreEqual(0x06C45D188009454FUL, CounterDropout.Draw(0, 2));
    }

    /// <summary>The obvious construction: per element, its 32 bits of the stream decide keep/drop; then torch's own ops.</summary>
    private static Tensor PlainNoise(long[] shape, double p, ScalarType dtype, ulong key)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        uint threshold = (uint)Math.Round(p * 4294967296.0);
        var keep = new float[n];
        for (long i = 0; i < n; i++)
        {
            ulong z = CounterDropout.Draw(key, (ulong)(i / 2));
            uint bits = i % 2 == 0 ? (uint)z : (uint)(z >> 32);
            keep[i] = bits < threshold ? 0f : 1f;
        }
        return torch.tensor(keep).reshape(shape).to(dtype).div_(1 - p);
    }

    [TestMethod]
    [DataRow(ScalarType.BFloat16, 0.05)]
    [DataRow(ScalarType.Float16, 0.1)]
    [DataRow(ScalarType.Float32, 0.05)]
    [DataRow(ScalarType.Float64, 0.5)]
    public void NoiseIsTorchsFormulaOverTheStream(ScalarType dtype, double p)
    {
        // Odd counts, counts below one vector, and counts with whole vectors and a tail.
        foreach (var shape in new[] { new long[] { 7, 33 }, new long[] { 2, 3, 5 }, new long[] { 1 }, new long[] { 3, 1001 }, new long[] { 4096 } })
        {
            var fast = CounterDropout.Noise(shape, p, dtype, key: 12345);
            var plain = PlainNoise(shape, p, dtype, key: 12345);
            Assert.AreEqual(dtype, fast.dtype);
            CollectionAssert.AreEqual(plain.shape, fast.shape);
            Assert.IsTrue(plain.equal(fast).all().item<bool>(), $"{dtype} p={p} shape [{string.Join(",", shape)}]");
        }
    }

    [TestMethod]
    public void TheVectorizedFillEqualsTheElementByElementOne()
    {
        foreach (int n in new[] { 0, 1, 15, 16, 17, 31, 32, 33, 64, 1000, 4099 })
        {
            var wide16 = new ushort[n]; var plain16 = new ushort[n];
            CounterDropout.Fill<ushort>(wide16, 77, CounterDropout.DropThreshold(0.3), 0x3FB7);
            CounterDropout.Fill<ushort>(plain16, 77, CounterDropout.DropThreshold(0.3), 0x3FB7, vectorized: false);
            CollectionAssert.AreEqual(plain16, wide16, $"16-bit, n={n}");
            var wide32 = new uint[n]; var plain32 = new uint[n];
            CounterDropout.Fill<uint>(wide32, 78, CounterDropout.DropThreshold(0.05), 0x3F86BCA2);
            CounterDropout.Fill<uint>(plain32, 78, CounterDropout.DropThreshold(0.05), 0x3F86BCA2, vectorized: false);
            CollectionAssert.AreEqual(plain32, wide32, $"32-bit, n={n}");
        }
    }

    [TestMethod]
    public void ApplyDrawsItsKeyFromTorchsGeneratorAndMultipliesTheInput()
    {
        var x = torch.randn(64, 48).to(ScalarType.BFloat16);
        torch.manual_seed(21);
        var y = CounterDropout.Apply(x, 0.05, training: true);
        torch.manual_seed(21);
        ulong key = CounterDropout.DrawKey();
        Assert.IsTrue((x * PlainNoise(x.shape, 0.05, ScalarType.BFloat16, key)).equal(y).all().item<bool>());

        torch.manual_seed(21);
        Assert.IsTrue(y.equal(CounterDropout.Apply(x, 0.05, training: true)).all().item<bool>(), "the same seed, the same mask");
        Assert.IsFalse(y.equal(CounterDropout.Apply(x, 0.05, training: true)).all().item<bool>(), "the next call draws a new mask");
    }

    [TestMethod]
    public void BernoulliStatisticsHold()
    {
        const int n = 1_000_000;
        foreach (double p in new[] { 0.05, 0.3, 0.5 })
        {
            var dropped = CounterDropout.Noise(new long[] { n }, p, ScalarType.Float32, key: 99).eq(0).to(ScalarType.Float64);
            double sigma = Math.Sqrt(p * (1 - p) / n);
            Assert.AreEqual(p, dropped.mean().item<double>(), 5 * sigma, $"drop rate at p={p}");
            // Neighbours (the two halves of one 64-bit output, and consecutive outputs) are independent: P(both) = p².
            foreach (int lag in new[] { 1, 2 })
            {
                double both = (dropped[TensorIndex.Slice(0, n - lag)] * dropped[TensorIndex.Slice(lag, n)]).mean().item<double>();
                double s = Math.Sqrt(p * p * (1 - p * p) / (n - lag));
                Assert.AreEqual(p * p, both, 5 * s, $"pairs at lag {lag}, p={p}");
            }
        }
        // Different keys give unrelated masks.
        var a = CounterDropout.Noise(new long[] { n }, 0.5, ScalarType.Float32, key: 1).eq(0).to(ScalarType.Float64);
        var b = CounterDropout.Noise(new long[] { n }, 0.5, ScalarType.Float32, key: 2).eq(0).to(ScalarType.Float64);
        Assert.AreEqual(0.25, (a * b).mean().item<double>(), 5 * Math.Sqrt(0.25 * 0.75 / n));
    }

    [TestMethod]
    public void TheGradientIsTheNoise()
    {
        var x = torch.randn(16, 40, requires_grad: true);
        torch.manual_seed(3);
        var y = CounterDropout.Apply(x, 0.2, training: true);
        y.sum().backward();
        torch.manual_seed(3);
        ulong key = CounterDropout.DrawKey();
        Assert.IsTrue(PlainNoise(x.shape, 0.2, ScalarType.Float32, key).equal(x.grad!).all().item<bool>());
    }

    [TestMethod]
    public void OffWhenNotTrainingOrAtZeroAndTorchsDropoutOffTheCpu()
    {
        var x = torch.randn(4, 4);
        Assert.AreSame(x, CounterDropout.Apply(x, 0.05, training: false));
        Assert.AreSame(x, CounterDropout.Apply(x, 0, training: true));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => CounterDropout.Apply(x, 1.0, training: true));
        var meta = torch.empty(new long[] { 3, 5 }, ScalarType.BFloat16, torch.META);
        var y = CounterDropout.Apply(meta, 0.05, training: true);
        Assert.AreEqual(DeviceType.META, y.device_type);
        CollectionAssert.AreEqual(new long[] { 3, 5 }, y.shape);
    }

    [TestMethod]
    public void GradientCheckpointingRepeatsTheAdaptersMasks()
    {
        // With dropout on, the recomputed forward must see the same masks: equal gradients with and without checkpointing.
        var ids = torch.tensor(new long[] { 3, 1, 4, 1, 5, 9, 2, 6 }).unsqueeze(0);
        var targets = torch.tensor(new long[] { 1, 4, 1, 5, 9, 2, 6, 5 }).unsqueeze(0);
        var grads = new List<Tensor[]>();
        foreach (bool checkpoint in new[] { false, true })
        {
            var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(tied: false), ScalarType.Float32, seed: 8);
            torch.manual_seed(8);   // the adapters' initialization draws from the global generator
            LoraAdapters.Apply(model, new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0.3 });
            foreach (var b in model.named_parameters().Where(kv => kv.name.Contains("lora_B"))) using (torch.no_grad()) b.parameter.normal_(0, 0.1);
            model.GradientCheckpointing = checkpoint;
            model.train();
            torch.manual_seed(5);
            (-model.TokenLogProbs(ids, targets).mean()).backward();
            grads.Add(LoraAdapters.Parameters(model).Select(q => q.grad!.clone()).ToArray());
        }
        Assert.AreEqual(grads[0].Length, grads[1].Length);
        for (int i = 0; i < grads[0].Length; i++)
            Assert.IsTrue(grads[0][i].allclose(grads[1][i], rtol: 1e-5, atol: 1e-7), $"adapter parameter {i}: max diff {(grads[0][i] - grads[1][i]).abs().max().item<float>()} of {grads[0][i].abs().max().item<float>()}");
    }
}
