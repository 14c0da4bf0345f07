using System.Runtime.Intrinsics;
using Microsoft.ML.StepDpo.Modeling;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

/// <summary>The fused decoder's element-wise loops against the same formulas in double precision, vector lanes and tails alike.</summary>
[TestClass]
public sealed unsafe class FloatKernelsTests
{
    private static void RequireKernel()
    {
        if (!System.Runtime.Intrinsics.X86.Avx512F.IsSupported) Assert.Inconclusive("The kernels need AVX-512F.");
    }

    [TestMethod]
    public void ExpIsWithinTwoUnitsInTheLastPlaceAcrossTheFloatRange()
    {
        RequireKernel();
        var rnd = new Random(1);
        double worst = 0;
        for (int t = 0; t < 20000; t++)
        {
            var x = new float[16];
            for (int i = 0; i < 16; i++) x[i] = (float)(rnd.NextDouble() * 175 - 87);
            if (t == 0) x = new float[] { 0, 1, -1, 0.5f, -0.5f, 10, -10, 80, -80, 88, -87, 0.34657f, -0.34657f, 1e-8f, -1e-8f, 2 };
            var e = FloatKernels.Exp(Vector512.Create(x));
            for (int i = 0; i < 16; i++)
            {
                double expected = Math.Exp(x[i]);
                double ulp = Math.Abs(MathF.BitIncrement((float)expected) - (float)expected);
                worst = Math.Max(worst, Math.Abs(e.GetElement(i) - expected) / ulp);
            }
        }
        Assert.IsLessThan(2.0, worst, $"worst error {worst:F2} ulp");
        var edges = FloatKernels.Exp(Vector512.Create(-200f, -88f, 89f, 1000f, float.NegativeInfinity, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
        Assert.AreEqual(0f, edges.GetElement(0));
        Assert.IsTrue(edges.GetElement(1) >= 0 && edges.GetElement(1) < 1e-37f);
        Assert.AreEqual(float.PositiveInfinity, edges.GetElement(2));
        Assert.AreEqual(float.PositiveInfinity, edges.GetElement(3));
        Assert.AreEqual(0f, edges.GetElement(4));
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(15)]
    [DataRow(16)]
    [DataRow(37)]
    [DataRow(384)]
    public void RowOperationsEqualTheirFormulas(int n)
    {
        RequireKernel();
        var rnd = new Random(n);
        float[] Random(double scale) => Enumerable.Range(0, n).Select(_ => (float)((rnd.NextDouble() * 2 - 1) * scale)).ToArray();
        float[] x = Random(6), y = Random(3), w = Random(2);

        var softmax = new float[n];
        fixed (float* xp = x, sp = softmax) FloatKernels.SoftMax(xp, sp, n);
        double max = x.Max(), sum = x.Sum(v => Math.Exp(v - max));
        for (int i = 0; i < n; i++) Assert.AreEqual(Math.Exp(x[i] - max) / sum, softmax[i], 2e-7, $"softmax[{i}]");

        var silu = new float[n];
        fixed (float* xp = x, yp = y, sp = silu) FloatKernels.SiluTimes(xp, yp, sp, n);
        for (int i = 0; i < n; i++) Assert.AreEqual(x[i] / (1 + Math.Exp(-x[i])) * y[i], silu[i], 1e-5, $"silu[{i}]");

        var norm = new float[n];
        fixed (float* xp = x, np = norm, wp = w) FloatKernels.RmsNorm(xp, np, n, wp, 1e-6f);
        double rms = Math.Sqrt(x.Sum(v => (double)v * v) / n + 1e-6);
        for (int i = 0; i < n; i++) Assert.AreEqual(w[i] * x[i] / rms, norm[i], 1e-5, $"norm[{i}]");

        var total = (float[])x.Clone();
        fixed (float* tp = total, yp = y) FloatKernels.AddInPlace(tp, yp, n);
        for (int i = 0; i < n; i++) Assert.AreEqual(x[i] + y[i], total[i], $"sum[{i}]");

        // In place, as the decoder calls them.
        fixed (float* xp = x) FloatKernels.SoftMax(xp, xp, n);
        CollectionAssert.AreEqual(softmax, x);
    }
}
