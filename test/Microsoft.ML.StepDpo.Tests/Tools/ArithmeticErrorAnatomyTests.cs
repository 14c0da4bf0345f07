using Microsoft.ML.StepDpo.Tasks;
using StepDpo.Tools.Study;

namespace Microsoft.ML.StepDpo.Tests.Tools;

[TestClass]
public sealed class ArithmeticErrorAnatomyTests
{
    // Gold chain of "Zoe has 6 pens. Zoe buys 3 more. Zoe loses 7. How many pens now?"
    private static readonly string[] Gold = ["6+3=9.", "9-7=2."];

    private static string Solution(params string[] steps) =>
        "Let's think step by step.\n" + string.Concat(steps.Select((s, i) => $"Step {i + 1}: {s}\n")) + "The answer is 0.";

    [TestMethod]
    [DataRow("9-7=3.", "slip")]
    [DataRow("9*7=63.", "reading")]
    [DataRow("9-3=6.", "reading")]
    [DataRow("9+7=15.", "reading+slip")]
    [DataRow("9-7=", "malformed")]
    [DataRow("nine minus seven", "malformed")]
    [DataRow("9-7=99999999999999999999999.", "malformed")]
    public void ClassifiesTheFirstStepThatLeavesTheGoldChain(string second, string expected) =>
        Assert.AreEqual(expected, ArithmeticErrorAnatomy.Classify(Gold, Solution("6+3=9.", second)));

    [TestMethod]
    public void AdditionAndMultiplicationMayBeWrittenEitherWayRound()
    {
        Assert.AreEqual("answer_line", ArithmeticErrorAnatomy.Classify(Gold, Solution("3+6=9.", "9-7=2.")));
        Assert.AreEqual("reading", ArithmeticErrorAnatomy.Classify(Gold, Solution("6+3=9.", "7-9=-2.")));
    }

    [TestMethod]
    public void OnlyTheFirstDepartureCounts() =>
        Assert.AreEqual("slip", ArithmeticErrorAnatomy.Classify(Gold, Solution("6+3=10.", "10*7=70.")));

    [TestMethod]
    public void ChainLengthErrors()
    {
        Assert.AreEqual("too_few_steps", ArithmeticErrorAnatomy.Classify(Gold, Solution("6+3=9.")));
        Assert.AreEqual("too_many_steps", ArithmeticErrorAnatomy.Classify(Gold, Solution("6+3=9.", "9-7=2.", "2*2=4.")));
    }

    [TestMethod]
    public void CountsOnlyWrongSolutionsOverRealGeneratedProblems()
    {
        var problems = ArithmeticTask.Generate(new ArithmeticTaskOptions(), 20, seed: 3, TaskSplit.HeldOut);
        var gold = problems.Select(p => p.Steps).ToList();
        // The gold solutions themselves are right; a slipped last step is counted once per wrong solution.
        var solutions = problems.Select((p, i) => i % 2 == 0
            ? (p.Solution, true)
            : (Solution([.. p.Steps.SkipLast(1), Slip(p.Steps[^1])]), false)).ToList();
        var counts = ArithmeticErrorAnatomy.Count(gold, solutions);
        Assert.AreEqual(10, counts["slip"]);
        Assert.AreEqual(10, counts.Values.Sum());
        Assert.IsTrue(problems.All(p => ArithmeticErrorAnatomy.Classify(p.Steps, p.Solution) == "answer_line"),
            "A gold solution matches its gold chain everywhere.");
    }

    private static string Slip(string step)
    {
        int eq = step.IndexOf('=', StringComparison.Ordinal);
        long result = long.Parse(step[(eq + 1)..^1], System.Globalization.CultureInfo.InvariantCulture);
        return $"{step[..(eq + 1)]}{result + 1}.";
    }
}
