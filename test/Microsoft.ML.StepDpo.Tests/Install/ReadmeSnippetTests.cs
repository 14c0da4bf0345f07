using Microsoft.ML.Data;

namespace Microsoft.ML.StepDpo.Tests.Install;

[TestClass]
public sealed class ReadmeSnippetTests
{
    [TestMethod]
    public void ReadmeQuickStartSnippetIsTheQuickStartProgram()
    {
        string program = RepositoryFiles.Normalize(File.ReadAllText(Path.Combine(RepositoryFiles.Root, "src", "Samples", "QuickStart", "Program.cs")));
        Assert.AreEqual(program, RepositoryFiles.ReadmeBlock("quickstart"),
            "README.md's first snippet must be src/Samples/QuickStart/Program.cs exactly (copy the file between the quickstart markers).");
    }

    [TestMethod]
    public void QuickStartDataIsGsm8kInTheBuiltInTasksStyle()
    {
        var ml = new MLContext(0);
        var problems = ml.Data.LoadFromGsm8kJsonl(Path.Combine(RepositoryFiles.Root, "src", "Samples", "QuickStart", "problems.jsonl"));
        var questions = problems.GetColumn<string>("question").ToList();
        var answers = problems.GetColumn<string>("final_answer").ToList();
        Assert.IsTrue(questions.Count >= 10, "the quick start needs enough problems for step pairs to come out");
        foreach (var (question, answer) in questions.Zip(answers))
        {
            StringAssert.EndsWith(question, "now?");
            Assert.IsTrue(int.TryParse(answer, out _), $"'{question}': final answer '{answer}' is not a number");
        }
    }
}
