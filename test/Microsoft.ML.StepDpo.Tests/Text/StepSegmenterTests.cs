using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Tests.Text;

[TestClass]
public sealed class StepSegmenterTests
{
    private sealed class Row
    {
        public string Solution { get; set; } = "";
        public string Id { get; set; } = "";
    }

    private static readonly Row[] s_rows =
    {
        new() { Id = "a", Solution = "Let's think step by step.\nStep 1: 2+2=4.\nStep 2: 4*3=12.\nThe answer is: 12" },
        new() { Id = "b", Solution = "First paragraph.\n\nSecond paragraph.\n\n\\boxed{7}" },
        new() { Id = "c", Solution = "   " },
        new() { Id = "d", Solution = "**Step 1:** x=1\r\n**Step 2:** y=2\r\n#### 3" },
    };

    private static List<string[]> ReadSteps(IDataView view, string column)
        => view.GetColumn<VBuffer<ReadOnlyMemory<char>>>(column).Select(v => v.DenseValues().Select(m => m.ToString()).ToArray()).ToList();

    [TestMethod]
    public void MapsTextToStepVectorWithCountsAndOffsets()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(s_rows);
        var est = ml.Transforms.SegmentSteps(new StepSegmenter.Options
        {
            InputColumnName = "Solution",
            OutputColumnName = "Steps",
            AnswerLine = AnswerLineHandling.SeparateStep,
            StepCountColumnName = "StepCount",
            StepOffsetsColumnName = "StepOffsets",
        });
        var model = est.Fit(data);
        var output = model.Transform(data);
        var stepsCol = output.Schema["Steps"];
        Assert.IsInstanceOfType<VectorDataViewType>(stepsCol.Type);
        Assert.AreEqual(TextDataViewType.Instance, ((VectorDataViewType)stepsCol.Type).ItemType);
        Assert.IsNull(output.Schema.GetColumnOrNull(StepSegmenterMapping.StepsColumn), "internal columns are dropped");
        Assert.IsNull(output.Schema.GetColumnOrNull(StepSegmenterMapping.ConfigColumn), "internal columns are dropped");

        var steps = ReadSteps(output, "Steps");
        CollectionAssert.AreEqual(new[] { "2+2=4.", "4*3=12.", "The answer is: 12" }, steps[0]);
        CollectionAssert.AreEqual(new[] { "First paragraph.", "Second paragraph.", "\\boxed{7}" }, steps[1]);
        Assert.AreEqual(0, steps[2].Length);
        CollectionAssert.AreEqual(new[] { "x=1", "y=2", "#### 3" }, steps[3]);
        CollectionAssert.AreEqual(new[] { 3, 3, 0, 3 }, output.GetColumn<int>("StepCount").ToArray());
        var offsets = output.GetColumn<VBuffer<int>>("StepOffsets").First().DenseValues().ToArray();
        Assert.AreEqual(s_rows[0].Solution.IndexOf("2+2", StringComparison.Ordinal), offsets[0]);
    }

    [TestMethod]
    public void SchemaErrors()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(s_rows);
        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.SegmentSteps("Steps", "Nope").Fit(data));
        StringAssert.Contains(missing.Message, "Could not find input column 'Nope'");
        var numeric = ml.Data.LoadFromEnumerable(new[] { new { X = 1f } });
        var wrong = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.SegmentSteps("Steps", "X").Fit(numeric));
        StringAssert.Contains(wrong.Message, "'X'");
        Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.SegmentSteps(new StepSegmenter.Options { Mode = SegmentationMode.CustomPattern }));
    }

    [TestMethod]
    public void SaveAndLoadInSameProcessGivesIdenticalOutputInsideAChain()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(s_rows);
        var pipeline = ml.Transforms.SegmentSteps("Steps", "Solution", SegmentationMode.Auto)
            .Append(ml.Transforms.SegmentSteps(new StepSegmenter.Options { InputColumnName = "Solution", OutputColumnName = "Lines", Mode = SegmentationMode.Lines }));
        var model = pipeline.Fit(data);
        string path = Path.Combine(Path.GetTempPath(), $"seg-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var ml2 = new MLContext(seed: 2);
            ml2.ComponentCatalog.RegisterAssembly(typeof(StepSegmenter).Assembly);
            var loaded = ml2.Model.Load(path, out var schema);
            Assert.AreEqual(data.Schema.Count, schema.Count);
            var a = model.Transform(data);
            var b = loaded.Transform(data);
            foreach (var col in new[] { "Steps", "Lines" })
            {
                var x = ReadSteps(a, col);
                var y = ReadSteps(b, col);
                Assert.AreEqual(x.Count, y.Count);
                for (int i = 0; i < x.Count; i++) CollectionAssert.AreEqual(x[i], y[i]);
            }
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void SaveThenLoadInFreshProcessGivesIdenticalOutput()
    {
        var ml = new MLContext(seed: 1);
        string dir = Path.Combine(Path.GetTempPath(), $"seg-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string input = Path.Combine(dir, "in.jsonl");
            File.WriteAllLines(input, s_rows.Select(r => System.Text.Json.JsonSerializer.Serialize(new { id = r.Id, solution = r.Solution })));
            var data = ml.Data.LoadFromJsonl(input, "id", "solution");
            var model = ml.Transforms.SegmentSteps(new StepSegmenter.Options
            {
                InputColumnName = "solution",
                OutputColumnName = "steps",
                Mode = SegmentationMode.StepMarkers,
                AnswerLine = AnswerLineHandling.Drop,
                StepCountColumnName = "n",
            }).Fit(data);
            string modelPath = Path.Combine(dir, "model.zip");
            ml.Model.Save(model, data.Schema, modelPath);
            string expected = Path.Combine(dir, "expected.jsonl");
            ml.Data.SaveAsJsonl(model.Transform(data), expected);

            string actual = Path.Combine(dir, "actual.jsonl");
            var (code, output) = FreshProcess.RunTestHost("apply-model", "--model", modelPath, "--input", input, "--fields", "id", "solution", "--output", actual);
            Assert.AreEqual(0, code, output);
            Assert.AreEqual(File.ReadAllText(expected), File.ReadAllText(actual));
            StringAssert.Contains(File.ReadAllText(actual), "\"steps\":[\"2+2=4.\",\"4*3=12.\"]");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
