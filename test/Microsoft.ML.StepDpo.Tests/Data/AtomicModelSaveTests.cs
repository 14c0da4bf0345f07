using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Tests.Sampling;
using Microsoft.ML.StepDpo.Verification;

namespace Microsoft.ML.StepDpo.Tests.Data;

/// <summary>
/// A model save that fails leaves no partial zip: <c>mlContext.Model.Save(model, schema, path)</c> creates the file before
/// any transformer writes into it, so a failure leaves a file that later fails to load; <c>SaveAtomically</c> writes a
/// temporary file and renames it, so an existing model at the path is untouched and a new path stays free.
/// </summary>
[TestClass]
public sealed class AtomicModelSaveTests
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
    };

    private string _dir = "";

    [TestInitialize]
    public void Init() => _dir = Directory.CreateTempSubdirectory("model-save-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, true);

    [TestMethod]
    public void AFailedSaveLeavesTheExistingModelAsItWasAndNoPartialOrTemporaryFile()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(s_rows);
        var segmenter = ml.Transforms.SegmentSteps("Steps", "Solution");
        var saveable = segmenter.Append(ml.Transforms.LocateFirstError("Problem", "Steps", "Answer", null, new ArithmeticStepVerifier())).Fit(data);
        // A locator with a judge verifier cannot be saved: its Save throws after the segmenter's entries are written.
        var judge = new JudgeStepVerifier(new ScriptedChatClient((_, _, _) => "Final Decision: Step 1: correct"));
        var unsaveable = segmenter.Append(ml.Transforms.LocateFirstError("Problem", "Steps", "Answer", null, new ArithmeticStepVerifier(), judge)).Fit(data);

        // Into a folder that does not exist yet: it is created, and the model loads.
        string path = Path.Combine(_dir, "models", "locator.zip");
        ml.Model.SaveAtomically(saveable, data.Schema, path);
        var before = File.ReadAllBytes(path);

        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Model.SaveAtomically(unsaveable, data.Schema, path));
        StringAssert.Contains(e.Message, "'judge'");
        CollectionAssert.AreEqual(before, File.ReadAllBytes(path), "the model that was there is untouched");
        CollectionAssert.AreEqual(new[] { path }, Directory.GetFiles(Path.GetDirectoryName(path)!), "no temporary file is left");
        var loaded = ml.Model.Load(path, out _);
        Assert.AreEqual(2, loaded.Transform(data).GetColumn<int>("FirstErrorStep").Single());

        // A new path stays free.
        string fresh = Path.Combine(_dir, "models", "judge.zip");
        Assert.ThrowsExactly<InvalidOperationException>(() => ml.Model.SaveAtomically(unsaveable, data.Schema, fresh));
        Assert.IsFalse(File.Exists(fresh));
        CollectionAssert.AreEqual(new[] { path }, Directory.GetFiles(Path.GetDirectoryName(path)!));
    }
}
