using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Tasks;

namespace Microsoft.ML.StepDpo.Tests.Pipeline;

/// <summary>
/// Resuming step-preference building is keyed by what a problem is (its id, else its text and answer), not by its row
/// number: editing the input between runs never redoes a problem or duplicates its rows.
/// </summary>
[TestClass]
public sealed class StableResumeKeyTests
{
    private sealed class ProblemRow
    {
        public string Problem { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    private static readonly IReadOnlyList<ArithmeticProblem> s_problems =
        ArithmeticTask.Generate(ArithmeticTaskOptions.Default, count: 6, seed: 5, TaskSplit.Train);

    private string _dir = "";

    [TestInitialize]
    public void Init() => _dir = Directory.CreateTempSubdirectory("stepdpo-keys-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, true);

    private static IDataView Problems(MLContext ml, IEnumerable<ArithmeticProblem> problems) =>
        ml.Data.LoadFromEnumerable(problems.Select(p => new ProblemRow { Problem = p.Question, Answer = p.Answer.ToString() }));

    private StepPreferenceOptions Options(Microsoft.ML.StepDpo.Sampling.ICompletionSource policy, string name) => new()
    {
        Policy = policy, OutputPath = Path.Combine(_dir, name + ".jsonl"), AnswerPairsPath = Path.Combine(_dir, name + ".answers.jsonl"),
        SamplesPerProblem = 8, RectificationSamples = 4, RolloutsPerPrefix = 4, MaxConcurrency = 1, Dataset = "arith",
    };

    private static string[] SortedLines(string path) => File.ReadAllLines(path).Order(StringComparer.Ordinal).ToArray();

    private sealed class SynchronousProgress(Action<StepPreferenceReport> report) : IProgress<StepPreferenceReport>
    {
        public void Report(StepPreferenceReport value) => report(value);
    }

    [TestMethod]
    public async Task DeletingTheFirstInputLineBeforeAResumeRedoesNoProblem()
    {
        var ml = new MLContext(seed: 1);
        var reference = Options(ScriptedArithmeticPolicy.Create(s_problems), "reference");
        await ml.StepDpo().BuildStepPreferencesAsync(Problems(ml, s_problems), reference);

        // Stopped after 3 of the 6 problems.
        using var cts = new CancellationTokenSource();
        var options = Options(ScriptedArithmeticPolicy.Create(s_problems), "run");
        var stop = new SynchronousProgress(r => { if (r.Problems == 3) cts.Cancel(); });
        await Assert.ThrowsAsync<OperationCanceledException>(() => ml.StepDpo().BuildStepPreferencesAsync(Problems(ml, s_problems), options, stop, cts.Token));
        Assert.HasCount(3, File.ReadAllLines(options.OutputPath + ".progress.jsonl"));

        // The first line is deleted; the resume skips the two other done problems and does the three left.
        var report = await ml.StepDpo().BuildStepPreferencesAsync(Problems(ml, s_problems.Skip(1)), options);
        Assert.AreEqual(2, report.Resumed);
        Assert.AreEqual(5, report.TotalProblems);
        Assert.HasCount(6, File.ReadAllLines(options.OutputPath + ".progress.jsonl"), "each problem committed once");
        CollectionAssert.AreEqual(SortedLines(reference.OutputPath!), SortedLines(options.OutputPath!), "every row once: none redone, none lost");
        CollectionAssert.AreEqual(SortedLines(reference.AnswerPairsPath!), SortedLines(options.AnswerPairsPath!));
    }

    [TestMethod]
    public async Task AProgressFileWithRowNumberKeysFromAnEarlierVersionIsMigratedByProblemText()
    {
        var ml = new MLContext(seed: 1);
        var options = Options(ScriptedArithmeticPolicy.Create(s_problems), "legacy");
        await ml.StepDpo().BuildStepPreferencesAsync(Problems(ml, s_problems), options);
        byte[] output = File.ReadAllBytes(options.OutputPath!);

        // Rewrite the keys as earlier versions wrote them: "row:FNV-1a of the problem text".
        string progressPath = options.OutputPath + ".progress.jsonl";
        var rowOf = s_problems.Select((p, row) => (Key: ProblemKey.FromText(p.Question, p.Answer.ToString()), Legacy: $"{row}:{StableHash.Fnv1a64(p.Question):x16}"))
            .ToDictionary(k => k.Key, k => k.Legacy);
        var legacyLines = File.ReadAllLines(progressPath).Select(l =>
        {
            var entry = JsonNode.Parse(l)!.AsObject();
            entry["Id"] = rowOf[(string)entry["Id"]!];
            return entry.ToJsonString();
        });
        File.WriteAllText(progressPath, string.Concat(legacyLines.Select(l => l + "\n")));

        // The first line is deleted (every row number shifts): still nothing is redone.
        var policy = ScriptedArithmeticPolicy.Create(s_problems);
        var report = await ml.StepDpo().BuildStepPreferencesAsync(Problems(ml, s_problems.Skip(1)), Options(policy, "legacy"));
        Assert.AreEqual(5, report.Resumed);
        Assert.AreEqual(0, policy.Calls, "no problem was sampled again");
        CollectionAssert.AreEqual(output, File.ReadAllBytes(options.OutputPath!));
    }

    [TestMethod]
    public void ProblemsWithoutAnIdAreKeyedByTextAndAnswerNotRowNumber()
    {
        var ml = new MLContext(seed: 1);
        var options = new StepPreferenceOptions { ProblemColumnName = "Problem", AnswerColumnName = "Answer" };
        var all = StepPreferenceBuilder.ReadProblems(Problems(ml, s_problems), options);
        var shifted = StepPreferenceBuilder.ReadProblems(Problems(ml, s_problems.Skip(1)), options);
        CollectionAssert.AreEqual(all.Skip(1).Select(p => p.Id).ToArray(), shifted.Select(p => p.Id).ToArray());
        Assert.AreNotEqual(ProblemKey.FromText("2+2?", "4"), ProblemKey.FromText("2+2?", "5"), "the answer is part of the key");
    }
}
