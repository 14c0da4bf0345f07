using Microsoft.ML.StepDpo.Answers;

namespace Microsoft.ML.StepDpo.Tests.Answers;

[TestClass]
public sealed class AnswerMetricsTests
{
    [TestMethod]
    public void CountsGiveTheAccuracyAndItsWilsonInterval()
    {
        // The demo's SFT row: 127 of 200 → 63.5% (56.6–69.9%).
        var m = new AnswerMetrics(200, 127);
        Assert.AreEqual(0.635, m.Accuracy, 1e-12);
        Assert.AreEqual(0.566, m.ConfidenceLower, 5e-4);
        Assert.AreEqual(0.699, m.ConfidenceUpper, 5e-4);
        Assert.IsEmpty(m.PerGroup);
        var none = new AnswerMetrics(0, 0);
        Assert.AreEqual(0, none.Accuracy);
        Assert.AreEqual(0, none.ConfidenceLower);
        Assert.AreEqual(1, none.ConfidenceUpper);
    }

    [TestMethod]
    public void ImpossibleCountsAreRefused()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AnswerMetrics(-1, 0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AnswerMetrics(10, 11));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AnswerMetrics(10, -1));
    }
}
