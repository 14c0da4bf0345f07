using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Answers;

namespace Microsoft.ML.StepDpo.Tests.Answers;

[TestClass]
public sealed class AnswerTransformTests
{
    private sealed class Row
    {
        public string Response { get; set; } = "";
        public string Gold { get; set; } = "";
        public string Source { get; set; } = "";
    }

    private static readonly Row[] s_rows =
    {
        new() { Response = "Step 1: ...\nThe answer is: 12", Gold = "12", Source = "gsm8k" },
        new() { Response = "So $\\boxed{\\dfrac{1}{2}}$.", Gold = "0.5", Source = "math" },
        new() { Response = "So $\\boxed{3}$.", Gold = "4", Source = "math" },
        new() { Response = "", Gold = "4", Source = "math" },
    };

    [TestMethod]
    public void ExtractAnswerTransformSavesAndLoads()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(s_rows);
        var model = ml.Transforms.ExtractAnswer("Extracted", "Response").Fit(data);
        var answers = model.Transform(data).GetColumn<ReadOnlyMemory<char>>("Extracted").Select(m => m.ToString()).ToArray();
        CollectionAssert.AreEqual(new[] { "12", "\\frac{1}{2}", "3", "" }, answers);
        string path = Path.Combine(Path.GetTempPath(), $"extract-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var ml2 = new MLContext(2);
            ml2.ComponentCatalog.RegisterAssembly(typeof(AnswerExtractor).Assembly);
            var loaded = ml2.Model.Load(path, out _);
            CollectionAssert.AreEqual(answers, loaded.Transform(data).GetColumn<ReadOnlyMemory<char>>("Extracted").Select(m => m.ToString()).ToArray());
        }
        finally { File.Delete(path); }
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.ExtractAnswer("A", "Nope").Fit(data));
    }

    [TestMethod]
    public void EvaluateGivesAccuracyIntervalAndGroups()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(s_rows);
        var m = ml.StepDpo().Evaluate(data, "Response", "Gold", "Source");
        Assert.AreEqual(4, m.Count);
        Assert.AreEqual(2, m.Correct);
        Assert.AreEqual(0.5, m.Accuracy, 1e-12);
        Assert.IsTrue(m.ConfidenceLower < 0.5 && m.ConfidenceUpper > 0.5 && m.ConfidenceLower > 0 && m.ConfidenceUpper < 1);
        Assert.AreEqual(1.0, m.PerGroup["gsm8k"].Accuracy);
        Assert.AreEqual(1.0 / 3, m.PerGroup["math"].Accuracy, 1e-12);
        Assert.AreEqual("accuracy: 0.5000 (n=4)", m.ToString());
    }
}
