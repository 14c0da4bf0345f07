using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Tests.Pipeline;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Verification;

using Microsoft.ML.StepDpo.Tests.Sampling;

namespace Microsoft.ML.StepDpo.Tests.Verification;

[TestClass]
public sealed class FirstErrorLocatorTransformTests
{
    private sealed class Row
    {
        public string Problem { get; set; } = "";
        public string Solution { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    private static readonly Row[] s_rows =
    {
        new() { Problem = "Mia has 12 books. Mia buys 6 boxes of 9. How many books now?", Answer = "66",
            Solution = "Let's think step by step.\nStep 1: 6*9=54.\nStep 2: 12+54=68.\nThe answer is 68." },
        new() { Problem = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?", Answer = "72",
            Solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72" },
        new() { Problem = "Tom buys 3 packs of 20 cards and 5 more. How many?", Answer = "65",
            Solution = "Step 1: 3 \\times 20 = 60\nStep 2: 60 + 5 = 66\nStep 3: 66 - 0 = 66\nThe answer is 66" },
        new() { Problem = "Empty", Answer = "1", Solution = "" },
    };

    private static (int[] First, string[][] Verdicts, string[] Evidence) Read(IDataView view, string first = "FirstErrorStep", string verdicts = "StepVerdicts", string evidence = "ErrorEvidence") =>
        (view.GetColumn<int>(first).ToArray(),
         view.GetColumn<VBuffer<ReadOnlyMemory<char>>>(verdicts).Select(v => v.DenseValues().Select(m => m.ToString()).ToArray()).ToArray(),
         view.GetColumn<string>(evidence).ToArray());

    [TestMethod]
    public void LocatesArithmeticErrorsAndRoundTripsThroughAModelFile()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(s_rows);
        var pipeline = ml.Transforms.SegmentSteps("Steps", "Solution")
            .Append(ml.Transforms.LocateFirstError("Problem", "Steps", "Answer"));
        var model = pipeline.Fit(data);
        var output = model.Transform(data);
        var (first, verdicts, evidence) = Read(output);

        CollectionAssert.AreEqual(new[] { 2, -1, 2, -1 }, first);
        CollectionAssert.AreEqual(new[] { "unknown", "incorrect", "unknown" }.Take(2).ToArray(), verdicts[0]);
        CollectionAssert.AreEqual(new[] { "unknown", "unknown" }, verdicts[1]);
        CollectionAssert.AreEqual(new[] { "unknown", "incorrect", "unknown" }, verdicts[2]);
        Assert.AreEqual(0, verdicts[3].Length);
        StringAssert.Contains(evidence[0], "step 2 [arithmetic]: 12+54=68");
        Assert.AreEqual("", evidence[1]);
        Assert.IsNull(output.Schema.GetColumnOrNull(FirstErrorLocatorMapping.ConfigColumn), "internal columns are dropped");
        Assert.AreEqual(NumberDataViewType.Int32, output.Schema["FirstErrorStep"].Type);

        string path = Path.Combine(Path.GetTempPath(), $"locator-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var ml2 = new MLContext(seed: 2);
            ml2.ComponentCatalog.RegisterAssembly(typeof(FirstErrorLocatorTransformer).Assembly);
            var loaded = ml2.Model.Load(path, out var schema);
            var again = Read(loaded.Transform(ml2.Data.LoadFromEnumerable(s_rows)));
            CollectionAssert.AreEqual(first, again.First);
            for (int i = 0; i < s_rows.Length; i++) CollectionAssert.AreEqual(verdicts[i], again.Verdicts[i]);
            CollectionAssert.AreEqual(evidence, again.Evidence);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void ConfirmingArithmeticAndCustomNamesRoundTrip()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(s_rows);
        // An empty verifier list is a clear error.
        Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.LocateFirstError(new FirstErrorLocatorEstimator.Options { Verifiers = new List<IStepVerifier>() }));

        var confirming = ml.Transforms.SegmentSteps("S", "Solution").Append(ml.Transforms.LocateFirstError(new FirstErrorLocatorEstimator.Options
        {
            StepsColumnName = "S", ReferenceAnswerColumnName = null, FirstErrorStepColumnName = "K", VerdictsColumnName = "V", EvidenceColumnName = "E",
            Verifiers = new List<IStepVerifier> { new ArithmeticStepVerifier(confirmsCorrectCalculations: true) },
        }));
        var model = confirming.Fit(data);
        var (first, verdicts, _) = Read(model.Transform(data), "K", "V", "E");
        CollectionAssert.AreEqual(new[] { 2, -1, 2, -1 }, first);
        CollectionAssert.AreEqual(new[] { "correct", "incorrect" }, verdicts[0]);
        CollectionAssert.AreEqual(new[] { "correct", "correct" }, verdicts[1]);

        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        stream.Position = 0;
        var loaded = ml.Model.Load(stream, out _);
        var again = Read(loaded.Transform(data), "K", "V", "E");
        CollectionAssert.AreEqual(verdicts[1], again.Verdicts[1]);
    }

    [TestMethod]
    public void LiveVerifiersWorkInMemoryAndRefuseToSave()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(s_rows);
        var judge = new JudgeStepVerifier(new ScriptedChatClient((m, _, _) =>
            m.Last().Text.Contains("Tom buys") ? "Final Decision: Step 1: correct; Step 2: neutral" : "Final Decision: Step 1: correct"));
        var model = ml.Transforms.SegmentSteps("Steps", "Solution")
            .Append(ml.Transforms.LocateFirstError("Problem", "Steps", "Answer", null, new ArithmeticStepVerifier(), judge))
            .Fit(data);
        var (first, verdicts, evidence) = Read(model.Transform(data));
        CollectionAssert.AreEqual(new[] { 2, -1, 2, -1 }, first);
        CollectionAssert.AreEqual(new[] { "correct", "incorrect" }, verdicts[0], "the judge decides step 1, arithmetic step 2");
        StringAssert.Contains(evidence[2], "[arithmetic]");

        var locator = model.LastTransformer;
        Assert.IsFalse(locator.CanSave);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Model.Save(model, data.Schema, new MemoryStream()));
        StringAssert.Contains(e.Message, "'judge'");
    }

    [TestMethod]
    public void SchemaErrorsNameTheColumn()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(s_rows);
        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.LocateFirstError("Problem", "Steps", "Answer").Fit(data));
        StringAssert.Contains(missing.Message, "Could not find input column 'Steps'");
        var wrongType = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.LocateFirstError("Problem", "Solution", "Answer").Fit(data));
        StringAssert.Contains(wrongType.Message, "Schema mismatch for input column 'Solution'");
        var segmented = ml.Transforms.SegmentSteps("Steps", "Solution").Fit(data).Transform(data);
        var answer = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.LocateFirstError("Problem", "Steps", "Nope").Fit(segmented));
        StringAssert.Contains(answer.Message, "Could not find input column 'Nope'");
    }
}
