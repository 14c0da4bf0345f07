using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Tests.Data;

[TestClass]
public sealed class JsonlTests
{
    private string _dir = "";

    [TestInitialize]
    public void Init() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), $"jsonl-{Guid.NewGuid():N}"));

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, true);

    private string Write(string name, params string[] lines)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }

    [TestMethod]
    public void StepDpoRowsWithPrefixAliasAndEmptyRejected()
    {
        var ml = new MLContext(1);
        string path = Write("dpo.jsonl",
            """{"dataset":"MATH_Rephrased","prompt":"What is $2+3\\cdot4$?","initial_reason_steps":"Let's think step by step.\nStep 1: $3\\cdot4=12$.\nStep 2:","chosen":" $2+12=14$.","rejected":" $2+12=15$.","full_chosen":" $2+12=14$.\nThe answer is: 14","full_rejected":" $2+12=15$.\nThe answer is: 15","answer":"14"}""",
            "",
            """{"dataset":"GSM_AnsAug","prompt":"P","prefix":"Let's think step by step. Step 1:","chosen":"c","rejected":"","full_chosen":"fc","full_rejected":"","answer":"3"}""");
        var view = ml.Data.LoadFromStepDpoJsonl(path);
        CollectionAssert.AreEqual(new[] { "dataset", "prompt", "initial_reason_steps", "chosen", "rejected", "full_chosen", "full_rejected", "answer" },
            view.Schema.Select(c => c.Name).ToArray());
        var prefixes = view.GetColumn<ReadOnlyMemory<char>>("initial_reason_steps").Select(m => m.ToString()).ToArray();
        Assert.AreEqual(2, prefixes.Length);
        Assert.AreEqual("Let's think step by step. Step 1:", prefixes[1]);
        Assert.AreEqual("", view.GetColumn<ReadOnlyMemory<char>>("rejected").Last().ToString());
        // Composes with the segmenter: the prefix has one complete step.
        var steps = ml.Transforms.SegmentSteps("steps", "initial_reason_steps").Fit(view).Transform(view)
            .GetColumn<VBuffer<ReadOnlyMemory<char>>>("steps").First().DenseValues().Select(m => m.ToString()).ToArray();
        CollectionAssert.AreEqual(new[] { "$3\\cdot4=12$." }, steps);
    }

    [TestMethod]
    public void Gsm8kAndMathDeriveFinalAnswers()
    {
        var ml = new MLContext(1);
        var gsm = ml.Data.LoadFromGsm8kJsonl(Write("gsm.jsonl",
            """{"question":"Natalia sold 48 clips in April and half as many in May. How many in total?","answer":"In May she sold 48/2 = <<48/2=24>>24 clips.\nAltogether 48+24 = <<48+24=72>>72 clips.\n#### 72"}"""));
        Assert.AreEqual("72", gsm.GetColumn<ReadOnlyMemory<char>>("final_answer").Single().ToString());
        var math = ml.Data.LoadFromMathJsonl(Write("math.jsonl",
            """{"problem":"Compute $\\dbinom{5}{2}$.","solution":"$\\dbinom{5}{2}=\\frac{5\\cdot4}{2}=\\boxed{10}$.","level":"Level 1","type":"Counting & Probability"}"""));
        Assert.AreEqual("10", math.GetColumn<ReadOnlyMemory<char>>("final_answer").Single().ToString());
        Assert.AreEqual("Level 1", math.GetColumn<ReadOnlyMemory<char>>("level").Single().ToString());
    }

    [TestMethod]
    public void MalformedLineNamesFileAndLineOrIsSkippedAndCounted()
    {
        var ml = new MLContext(1);
        string path = Write("bad.jsonl", """{"question":"q1","answer":"#### 1"}""", "{not json", """{"question":"q3"}""", """[1,2]""", """{"question":"q5","answer":"#### 5"}""");
        var strict = ml.Data.LoadFromGsm8kJsonl(path);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => strict.GetColumn<ReadOnlyMemory<char>>("question").ToList());
        StringAssert.Contains(e.Message, path + ":2:");
        var lenient = ml.Data.LoadFromGsm8kJsonl(path, new JsonlReadOptions { SkipMalformedLines = true });
        CollectionAssert.AreEqual(new[] { "q1", "q5" }, lenient.GetColumn<ReadOnlyMemory<char>>("question").Select(m => m.ToString()).ToArray());
        Assert.AreEqual(3, lenient.SkippedLineCount);
    }

    [TestMethod]
    public void WrittenFilesRoundTripAsPlainJson()
    {
        var ml = new MLContext(1);
        var rows = new[] { new { id = "é∑", text = "a \"quoted\"\nline \\frac{1}{2}", n = 3, ok = true, v = new float[] { 1.5f, 2 } } };
        var data = ml.Data.LoadFromEnumerable(rows.Select(r => new Row { Id = r.id, Text = r.text, N = r.n, Ok = r.ok, V = r.v }));
        string path = Path.Combine(_dir, "out.jsonl");
        Assert.AreEqual(1, ml.Data.SaveAsJsonl(data, path));
        string line = File.ReadAllLines(path).Single();
        using var doc = JsonDocument.Parse(line); // other tooling: any JSON parser reads it
        Assert.AreEqual("é∑", doc.RootElement.GetProperty("Id").GetString());
        Assert.AreEqual(rows[0].text, doc.RootElement.GetProperty("Text").GetString());
        Assert.AreEqual(3, doc.RootElement.GetProperty("N").GetInt32());
        Assert.IsTrue(doc.RootElement.GetProperty("Ok").GetBoolean());
        Assert.AreEqual(2, doc.RootElement.GetProperty("V").GetArrayLength());
        var back = ml.Data.LoadFromJsonl(path, "Id", "Text", "N");
        Assert.AreEqual(rows[0].text, back.GetColumn<ReadOnlyMemory<char>>("Text").Single().ToString());
        Assert.AreEqual("3", back.GetColumn<ReadOnlyMemory<char>>("N").Single().ToString());
    }

    [TestMethod]
    public void StreamsLargeFilesInConstantMemory()
    {
        string path = Path.Combine(_dir, "big.jsonl");
        using (var w = new StreamWriter(path))
            for (int i = 0; i < 20_000; i++) w.WriteLine(JsonSerializer.Serialize(new { question = new string('x', 500) + i, answer = "#### " + i }));
        var ml = new MLContext(1);
        var view = ml.Data.LoadFromGsm8kJsonl(path);
        using var cursor = view.GetRowCursor(view.Schema);
        var get = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["final_answer"]);
        ReadOnlyMemory<char> v = default;
        long n = 0, before = GC.GetTotalMemory(true);
        while (cursor.MoveNext()) { get(ref v); n++; }
        long after = GC.GetTotalMemory(true);
        Assert.AreEqual(20_000, n);
        Assert.AreEqual("19999", v.ToString());
        Assert.IsTrue(after - before < 2_000_000, $"memory grew by {after - before} bytes for a {new FileInfo(path).Length} byte file");
    }

    private sealed class Row
    {
        public string Id { get; set; } = "";
        public string Text { get; set; } = "";
        public int N { get; set; }
        public bool Ok { get; set; }
        [VectorType(2)] public float[] V { get; set; } = Array.Empty<float>();
    }
}
