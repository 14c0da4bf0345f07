using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;

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
