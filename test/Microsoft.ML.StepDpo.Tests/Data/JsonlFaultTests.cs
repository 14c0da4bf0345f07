using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Modeling.Tokenization;

namespace Microsoft.ML.StepDpo.Tests.Data;

/// <summary>JSONL faults: invalid text in a line, and writing over the file being read.</summary>
[TestClass]
public sealed class JsonlFaultTests
{
    private string _dir = "";

    [TestInitialize]
    public void Init() => _dir = Directory.CreateTempSubdirectory("jsonl-fault-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, true);

    private string Write(string name, params string[] lines)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }

    private static List<string> Read(IDataView view, string column)
    {
        var list = new List<string>();
        using var cursor = view.GetRowCursor(view.Schema);
        var getter = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema[column]);
        ReadOnlyMemory<char> value = default;
        while (cursor.MoveNext())
        {
            getter(ref value);
            list.Add(value.ToString());
        }
        return list;
    }

    // JSON allows the escape of a lone surrogate; it is not text, and System.Text.Json refuses to make a string of it.
    private const string LoneSurrogateLine = "{\"question\": \"bad \\ud800 text\", \"answer\": \"1\"}";

    [TestMethod]
    public void ALoneSurrogateFailsWithFileAndLine()
    {
        var ml = new MLContext(1);
        string path = Write("s.jsonl", "{\"question\": \"fine\", \"answer\": \"2\"}", LoneSurrogateLine);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => Read(ml.Data.LoadFromJsonl(path, "question", "answer"), "question"));
        StringAssert.StartsWith(e.Message, $"{path}:2: ");
        StringAssert.Contains(e.Message, "'question'");
    }

    [TestMethod]
    public void ALoneSurrogateIsSkippedWhenMalformedLinesAreSkipped()
    {
        var ml = new MLContext(1);
        string path = Write("s.jsonl", "{\"question\": \"fine\", \"answer\": \"2\"}", LoneSurrogateLine, "{\"question\": \"also fine\", \"answer\": \"3\"}");
        var view = ml.Data.LoadFromJsonl(path, new[] { new JsonlField("question"), new JsonlField("answer") }, new JsonlReadOptions { SkipMalformedLines = true });
        CollectionAssert.AreEqual(new[] { "fine", "also fine" }, Read(view, "question"));
        Assert.AreEqual(1, view.SkippedLineCount);
    }

    [TestMethod]
    public void TheTokenizeReaderReportsALoneSurrogateWithItsLine()
    {
        using var input = new StringReader("{\"text\": \"ok\"}\n{\"text\": \"\\udc00\"}\n");
        var e = Assert.ThrowsExactly<InvalidDataException>(() => JsonlFieldTokenizer.Run(s => s.Select(c => (int)c).ToArray(), input, Stream.Null, "text"));
        StringAssert.StartsWith(e.Message, "Line 2:");
    }

    [TestMethod]
    public void SavingOverTheFileBeingReadKeepsItsRows()
    {
        var ml = new MLContext(1);
        string path = Write("rows.jsonl", "{\"question\": \"a\", \"answer\": \"1\"}", "{\"question\": \"b\", \"answer\": \"2\"}");
        var view = ml.Data.LoadFromJsonl(path, "question", "answer");
        Assert.AreEqual(2, ml.Data.SaveAsJsonl(view, path));
        CollectionAssert.AreEqual(new[] { "a", "b" }, Read(ml.Data.LoadFromJsonl(path, "question"), "question"));
        Assert.AreEqual(1, Directory.GetFiles(_dir).Length, "no temporary file is left behind");
    }

    [TestMethod]
    public void AFailedSaveLeavesTheOldFileAndNoTemporaryFile()
    {
        var ml = new MLContext(1);
        string good = Write("out.jsonl", "{\"question\": \"old\"}");
        string bad = Write("in.jsonl", "{\"question\": \"x\"}", "not json");
        Assert.ThrowsExactly<InvalidDataException>(() => ml.Data.SaveAsJsonl(ml.Data.LoadFromJsonl(bad, "question"), good));
        Assert.AreEqual("{\"question\": \"old\"}\n", File.ReadAllText(good));
        Assert.AreEqual(2, Directory.GetFiles(_dir).Length, "no temporary file is left behind");
    }

    [TestMethod]
    public void SavingIntoAMissingFolderCreatesIt()
    {
        var ml = new MLContext(1);
        string input = Write("in.jsonl", "{\"question\": \"x\"}");
        string output = Path.Combine(_dir, "new", "folder", "out.jsonl");
        Assert.AreEqual(1, ml.Data.SaveAsJsonl(ml.Data.LoadFromJsonl(input, "question"), output));
        Assert.IsTrue(File.Exists(output));
    }
}
