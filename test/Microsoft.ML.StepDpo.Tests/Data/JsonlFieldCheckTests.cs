using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Data;

namespace Microsoft.ML.StepDpo.Tests.Data;

/// <summary>
/// A field named in a column mapping that no row of the file has is an error at load (a misspelled field is never read
/// as ""); rows lacking a field that other rows have are counted.
/// </summary>
[TestClass]
public sealed class JsonlFieldCheckTests
{
    private string _dir = "";

    [TestInitialize]
    public void Init() => _dir = Directory.CreateTempSubdirectory("jsonl-fields-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, true);

    private string Write(params string[] lines)
    {
        string path = Path.Combine(_dir, "data.jsonl");
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }

    private static string[] Column(IDataView view, string name) =>
        view.GetColumn<ReadOnlyMemory<char>>(name).Select(m => m.ToString()).ToArray();

    [TestMethod]
    public void AMappedFieldNoRowHasIsAnErrorAtLoadNamingTheFieldTheFileAndItsFields()
    {
        string path = Write("""{"problem":"1+1","solution":"Step 1: 2.","answer":"2"}""", """{"problem":"2+2","solution":"Step 1: 4.","answer":"4"}""");
        var ml = new MLContext(1);
        // Thrown by the load itself, before any cursor runs.
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.Data.LoadFromJsonl(path, "problem", "solutoin"));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "'solutoin'");
        StringAssert.Contains(e.Message, "did you mean 'solution'");
        StringAssert.Contains(e.Message, "problem, solution, answer");
        Assert.IsFalse(e.Message.Contains('\n'), e.Message);

        // The same through the JsonlField overload, with an alias: both names are given.
        var aliased = Assert.ThrowsExactly<ArgumentException>(() => ml.Data.LoadFromJsonl(path,
            new[] { new JsonlField("prompt", false, "question") }));
        StringAssert.Contains(aliased.Message, "'prompt'");
        StringAssert.Contains(aliased.Message, "'question'");
        StringAssert.Contains(aliased.Message, path);

        // A case slip is suggested too.
        var cased = Assert.ThrowsExactly<ArgumentException>(() => ml.Data.LoadFromJsonl(path, "Answer"));
        StringAssert.Contains(cased.Message, "did you mean 'answer'");
    }

    [TestMethod]
    public void AFieldSomeRowsLackIsReadAsEmptyAndCounted()
    {
        string path = Write("""{"problem":"1+1","answer":"2"}""", """{"problem":"2+2"}""", """{"problem":"3+3"}""", """{"problem":"4+4","answer":"8"}""");
        var ml = new MLContext(1);
        var view = ml.Data.LoadFromJsonl(path, "problem", "answer");
        Assert.AreEqual(2L, view.RowsLackingField["answer"]);
        Assert.AreEqual(0L, view.RowsLackingField["problem"]);
        CollectionAssert.AreEqual(new[] { "2", "", "", "8" }, Column(view, "answer"));

        // Declared required: those rows are malformed (fail, or are skipped and counted with SkipMalformedLines).
        var strict = ml.Data.LoadFromJsonl(path, new[] { new JsonlField("problem"), new JsonlField("answer", Required: true) });
        Assert.AreEqual(2L, strict.RowsLackingField["answer"]);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => Column(strict, "answer"));
        StringAssert.Contains(e.Message, path + ":2:");
        var lenient = ml.Data.LoadFromJsonl(path, new[] { new JsonlField("problem"), new JsonlField("answer", Required: true) },
            new JsonlReadOptions { SkipMalformedLines = true });
        CollectionAssert.AreEqual(new[] { "2", "8" }, Column(lenient, "answer"));
        Assert.AreEqual(2L, lenient.SkippedLineCount);
    }

    [TestMethod]
    public void AFieldDeclaredAsMayBeAbsentReadsAsEmptyWhenNoRowHasIt()
    {
        string path = Write("""{"problem":"1+1"}""");
        var ml = new MLContext(1);
        var view = ml.Data.LoadFromJsonl(path, new[] { new JsonlField("problem"), new JsonlField("id") { MayBeAbsentFromFile = true } });
        CollectionAssert.AreEqual(new[] { "" }, Column(view, "id"));
        Assert.AreEqual(1L, view.RowsLackingField["id"]);
    }

    [TestMethod]
    public void TheBuiltInFormatsCheckTheirRequiredFieldsOnly()
    {
        var ml = new MLContext(1);
        // Step-DPO rows without the optional fields (dataset, full_chosen, …) load as before.
        string minimal = Write("""{"prompt":"P","chosen":" c.","rejected":" r."}""");
        CollectionAssert.AreEqual(new[] { "" }, Column(ml.Data.LoadFromStepDpoJsonl(minimal), "dataset"));

        // GSM8K with a capitalised field: an error at load with the suggestion, not "line 1: missing required field".
        string gsm = Write("""{"Question":"q","answer":"#### 1"}""");
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.Data.LoadFromGsm8kJsonl(gsm));
        StringAssert.Contains(e.Message, "'question'");
        StringAssert.Contains(e.Message, "did you mean 'Question'");
    }

    [TestMethod]
    public void AnEmptyFileOrOneWithOnlyMalformedLinesIsLeftToTheReader()
    {
        var ml = new MLContext(1);
        string empty = Write("");
        Assert.IsEmpty(Column(ml.Data.LoadFromJsonl(empty, "problem"), "problem"));

        // No row to learn the fields from: the reader reports the malformed line with file and line.
        string bad = Write("{not json");
        var view = ml.Data.LoadFromJsonl(bad, "problem");
        var e = Assert.ThrowsExactly<InvalidDataException>(() => Column(view, "problem"));
        StringAssert.Contains(e.Message, bad + ":1:");
    }
}
