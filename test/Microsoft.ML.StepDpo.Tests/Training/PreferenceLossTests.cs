using Microsoft.ML.StepDpo.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Training;

[TestClass]
public sealed class PreferenceLossTests
{
    private static readonly double[] PolicyW = { -12.5, -3.0, -40.25 }, PolicyL = { -14.0, -2.0, -39.0 };
    private static readonly double[] RefW = { -13.0, -2.5, -40.0 }, RefL = { -13.5, -2.75, -41.0 };
    private static readonly double[] LenW = { 5, 2, 17 }, LenL = { 7, 1, 12 };

    private static PairLogProbs Lp(double[] w, double[] l) =>
        new(torch.tensor(w, dtype: ScalarType.Float64), torch.tensor(l, dtype: ScalarType.Float64),
            torch.tensor(LenW, dtype: ScalarType.Float64), torch.tensor(LenL, dtype: ScalarType.Float64));

    private static double LogSigmoid(double x) => -Math.Log(1 + Math.Exp(-x));

    private static double Expected(Func<int, double> perPair) => Enumerable.Range(0, 3).Select(perPair).Average();

    private static double Delta(int i, double beta) => beta * ((PolicyW[i] - RefW[i]) - (PolicyL[i] - RefL[i]));

    [TestMethod]
    [DataRow(0.4, 0.0)]
    [DataRow(0.1, 0.0)]
    [DataRow(0.5, 0.2)]
    public void SigmoidMatchesThePaperEquation(double beta, double eps)
    {
        var r = PreferenceLoss.Compute(Lp(PolicyW, PolicyL), Lp(RefW, RefL), beta, PreferenceLossKind.Sigmoid, eps);
        double expected = Expected(i => -(1 - eps) * LogSigmoid(Delta(i, beta)) - eps * LogSigmoid(-Delta(i, beta)));
        Assert.AreEqual(expected, r.Loss.item<double>(), 1e-12);
        for (int i = 0; i < 3; i++)
        {
            Assert.AreEqual(beta * (PolicyW[i] - RefW[i]), r.ChosenRewards[i].item<double>(), 1e-12);
            Assert.AreEqual(beta * (PolicyL[i] - RefL[i]), r.RejectedRewards[i].item<double>(), 1e-12);
        }
    }

    [TestMethod]
    public void HingeRobustAndIpoMatchTheirFormulas()
    {
        double beta = 0.4, eps = 0.1;
        var hinge = PreferenceLoss.Compute(Lp(PolicyW, PolicyL), Lp(RefW, RefL), beta, PreferenceLossKind.Hinge);
        Assert.AreEqual(Expected(i => Math.Max(0, 1 - Delta(i, beta))), hinge.Loss.item<double>(), 1e-12);

        var robust = PreferenceLoss.Compute(Lp(PolicyW, PolicyL), Lp(RefW, RefL), beta, PreferenceLossKind.Robust, eps);
        Assert.AreEqual(Expected(i => ((1 - eps) * -LogSigmoid(Delta(i, beta)) - eps * -LogSigmoid(-Delta(i, beta))) / (1 - 2 * eps)),
            robust.Loss.item<double>(), 1e-12);

        var ipo = PreferenceLoss.Compute(Lp(PolicyW, PolicyL), Lp(RefW, RefL), beta, PreferenceLossKind.Ipo);
        Assert.AreEqual(Expected(i =>
        {
            double d = (PolicyW[i] - RefW[i]) / LenW[i] - (PolicyL[i] - RefL[i]) / LenL[i];
            return Math.Pow(d - 1 / (2 * beta), 2);
        }), ipo.Loss.item<double>(), 1e-12);
    }

    [TestMethod]
    public void EqualPolicyAndReferenceGiveLog2()
    {
        var r = PreferenceLoss.Compute(Lp(RefW, RefL), Lp(RefW, RefL), 0.4);
        Assert.AreEqual(Math.Log(2), r.Loss.item<double>(), 1e-12);
    }

    [TestMethod]
    public void GradientPushesChosenUpAndRejectedDown()
    {
        var w = torch.tensor(PolicyW, dtype: ScalarType.Float64, requires_grad: true);
        var l = torch.tensor(PolicyL, dtype: ScalarType.Float64, requires_grad: true);
        var policy = new PairLogProbs(w, l, torch.tensor(LenW), torch.tensor(LenL));
        PreferenceLoss.Compute(policy, Lp(RefW, RefL), 0.4).Loss.backward();
        // dL/dw_i = -β·σ(-δ_i)/B
        for (int i = 0; i < 3; i++)
        {
            double s = 1 / (1 + Math.Exp(Delta(i, 0.4)));
            Assert.AreEqual(-0.4 * s / 3, w.grad![i].item<double>(), 1e-12);
            Assert.AreEqual(0.4 * s / 3, l.grad![i].item<double>(), 1e-12);
        }
    }

    [TestMethod]
    public void BadArgumentsAreRejected()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => PreferenceLoss.Compute(Lp(RefW, RefL), Lp(RefW, RefL), 0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => PreferenceLoss.Compute(Lp(RefW, RefL), Lp(RefW, RefL), 0.4, labelSmoothing: 0.5));
    }
}
