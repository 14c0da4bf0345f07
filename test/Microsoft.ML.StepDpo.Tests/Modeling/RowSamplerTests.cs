using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

/// <summary>The per-row sampler draws from the filtered distribution, row by row.</summary>
[TestClass]
public sealed class RowSamplerTests
{
    private const int N = 20000;

    // probabilities 0.3, 0.05, 0.5, 0.15 (ids 0..3); id 4 impossible
    private static readonly double[] P = { 0.3, 0.05, 0.5, 0.15, 0 };

    private static double[] Frequencies(double temperature, double topP, long seed = 7)
    {
        using var scope = torch.NewDisposeScope();
        var logits = torch.tensor(P).log().unsqueeze(0).expand(N, P.Length).contiguous();
        var uniform = Enumerable.Range(0, N).Select(i => RowRandom.Uniform(seed, i, 3)).ToList();
        var ids = RowSampler.Sample(logits, Enumerable.Repeat(temperature, N).ToList(), Enumerable.Repeat(topP, N).ToList(), uniform);
        var counts = new double[P.Length];
        foreach (long id in ids.data<long>()) counts[id]++;
        return counts.Select(c => c / N).ToArray();
    }

    // Binomial standard error at N = 20000 is at most 0.0035; 0.012 is over 3 of them.
    private const double Tolerance = 0.012;

    [TestMethod]
    public void FrequenciesMatchTheProbabilities()
    {
        var f = Frequencies(1.0, 1.0);
        for (int i = 0; i < P.Length; i++) Assert.AreEqual(P[i], f[i], Tolerance, $"token {i}");
        Assert.AreEqual(0, f[4], "a token of probability 0 is never drawn");
    }

    [TestMethod]
    public void TopPKeepsTheNucleusAndTemperatureReshapes()
    {
        // 0.5 + 0.3 + 0.15 reach 0.9: the 0.05 token is dropped, the rest renormalized.
        var f = Frequencies(1.0, 0.9);
        Assert.AreEqual(0, f[1]);
        Assert.AreEqual(0.5 / 0.95, f[2], Tolerance);
        Assert.AreEqual(0.15 / 0.95, f[3], Tolerance);

        // Temperature 2: p^(1/2), renormalized.
        var sqrt = P.Select(Math.Sqrt).ToArray();
        f = Frequencies(2.0, 1.0);
        for (int i = 0; i < P.Length; i++) Assert.AreEqual(sqrt[i] / sqrt.Sum(), f[i], Tolerance, $"token {i}");
    }

    [TestMethod]
    public void EachRowUsesItsOwnSettingsAndNumber()
    {
        using var scope = torch.NewDisposeScope();
        var logits = torch.tensor(P).log().unsqueeze(0).expand(4, P.Length).contiguous();
        // Row 0 greedy; row 1 the lowest number (the most likely token); row 2 the highest possible number (the last
        // token of the nucleus, never the impossible one); row 3 top-p so small that only the most likely token stays.
        var ids = RowSampler.Sample(logits, new[] { 0.0, 1.0, 1.0, 1.0 }, new[] { 1.0, 1.0, 1.0, 1e-6 }, new[] { 0.99, 0.0, 1 - Math.Pow(2, -52), 0.99 });
        CollectionAssert.AreEqual(new long[] { 2, 2, 1, 2 }, ids.data<long>().ToArray());

        // Inverse CDF in probability order (0.5, 0.3, 0.15, 0.05): u = 0.79 falls in the second token, 0.81 in the third.
        ids = RowSampler.Sample(logits.narrow(0, 0, 2), new[] { 1.0, 1.0 }, new[] { 1.0, 1.0 }, new[] { 0.79, 0.81 });
        CollectionAssert.AreEqual(new long[] { 0, 3 }, ids.data<long>().ToArray());
    }

    [TestMethod]
    public void TheRowsInCSharpDrawWhatLibtorchsOperationsDraw()
    {
        // Continuous random logits (no exact ties, whose order libtorch's sort leaves open) over vocabularies of 5 to
        // 1,000, every kind of row in one batch: greedy, temperatures 0.5-2, top-p 0.3-1.
        using var scope = torch.NewDisposeScope();
        var rnd = new Random(3);
        int draws = 0;
        foreach (int v in new[] { 5, 54, 1000 })
        {
            int n = 600;
            var logits = torch.randn(new long[] { n, v }, generator: new Generator(4)) * Num(3.0);
            var temperature = Enumerable.Range(0, n).Select(i => new[] { 0, 0.5, 0.8, 1, 2 }[i % 5]).ToList();
            var topP = Enumerable.Range(0, n).Select(i => new[] { 0.3, 0.9, 0.95, 1 }[i / 5 % 4]).ToList();
            var uniform = Enumerable.Range(0, n).Select(_ => rnd.NextDouble()).ToList();
            RowSampler.InCSharp = true;
            var fast = RowSampler.Sample(logits, temperature, topP, uniform).data<long>().ToArray();
            RowSampler.InCSharp = false;
            var plain = RowSampler.Sample(logits, temperature, topP, uniform).data<long>().ToArray();
            RowSampler.InCSharp = true;
            CollectionAssert.AreEqual(plain, fast, $"vocabulary {v}");
            Assert.IsTrue(fast.Distinct().Count() > Math.Min(v, 50) / 2, "the draws spread over the vocabulary");
            draws += n;
        }
        Assert.AreEqual(1800, draws);
    }

    [TestMethod]
    public void InCSharpTokensOfEqualLogitsTakeTheirIdOrder()
    {
        using var scope = torch.NewDisposeScope();
        // Three equal logits, taken in id order 0, 1, 2 (id 3 is impossible): u = 0.1 draws id 0, 0.5 id 1, 0.9 id 2.
        var logits = torch.tensor(new[] { 1f, 1f, 1f, float.NegativeInfinity }).unsqueeze(0).expand(3, 4).contiguous();
        var ids = RowSampler.Sample(logits, new[] { 1.0, 1.0, 1.0 }, new[] { 1.0, 1.0, 1.0 }, new[] { 0.1, 0.5, 0.9 }).data<long>().ToArray();
        CollectionAssert.AreEqual(new long[] { 0, 1, 2 }, ids);
        var greedy = RowSampler.Sample(logits.narrow(0, 0, 1), new[] { 0.0 }, new[] { 1.0 }, new[] { 0.5 }).data<long>().ToArray();
        CollectionAssert.AreEqual(new long[] { 0 }, greedy, "argmax takes the first of equal maxima");
    }

    [TestMethod]
    public void TheRandomStreamIsAFunctionOfSeedRowAndStep()
    {
        Assert.AreEqual(RowRandom.Uniform(5, 2, 9), RowRandom.Uniform(5, 2, 9));
        var values = new HashSet<double>();
        for (long seed = 0; seed < 4; seed++)
            for (long row = 0; row < 4; row++)
                for (long step = 0; step < 4; step++)
                {
                    double u = RowRandom.Uniform(seed, row, step);
                    Assert.IsTrue(u is >= 0 and < 1);
                    values.Add(u);
                }
        Assert.HasCount(64, values, "different (seed, row, step) give different numbers");
        double mean = Enumerable.Range(0, N).Average(i => RowRandom.Uniform(1, i, 0));
        Assert.AreEqual(0.5, mean, 0.01);
    }
}
