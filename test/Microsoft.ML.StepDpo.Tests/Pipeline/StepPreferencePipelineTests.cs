using System.Text.Json;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Tests.Modeling;
using Microsoft.ML.StepDpo.Verification;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Text;

using Microsoft.ML.StepDpo.Tests.Sampling;

namespace Microsoft.ML.StepDpo.Tests.Pipeline;

[TestClass]
public sealed class StepPreferencePipelineTests
{
    private static readonly string[] s_fields = { "dataset", "prompt", "initial_reason_steps", "chosen", "rejected", "full_chosen", "full_rejected", "answer" };

    private sealed class ProblemRow
    {
        public string Problem { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    private static readonly IReadOnlyList<ArithmeticProblem> s_problems =
        ArithmeticTask.Generate(ArithmeticTaskOptions.Default, count: 12, seed: 5, TaskSplit.Train);

    private string _dir = "";

    [TestInitialize]
    public void Init() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), $"stepprefs-{Guid.NewGuid():N}"));

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, recursive: true);

    private static IDataView Problems(MLContext ml, IEnumerable<ArithmeticProblem>? problems = null) =>
        ml.Data.LoadFromEnumerable((problems ?? s_problems).Select(p => new ProblemRow { Problem = p.Question, Answer = p.Answer.ToString() }));

    private StepPreferenceOptions Options(ICompletionSource policy, string name, int concurrency = 3) => new()
    {
        Policy = policy,
        OutputPath = Path.Combine(_dir, name + ".jsonl"),
        AnswerPairsPath = Path.Combine(_dir, name + ".answers.jsonl"),
        SamplesPerProblem = 8,
        RectificationSamples = 4,
        RolloutsPerPrefix = 4,
        MaxConcurrency = concurrency,
        Dataset = "arith",
    };

    private static List<Dictionary<string, string>> ReadRows(string path) =>
        File.ReadAllLines(path).Select(l => JsonSerializer.Deserialize<Dictionary<string, string>>(l)!).ToList();

    private static string[] SortedLines(string path) => File.ReadAllLines(path).Order(StringComparer.Ordinal).ToArray();

    [TestMethod]
    public void BuildsStepPairsInTheMathStepDpoFormat()
    {
        var ml = new MLContext(seed: 1);
        var policy = ScriptedArithmeticPolicy.Create(s_problems);
        var options = Options(policy, "run");
        var reports = new List<StepPreferenceReport>();
        var report = ml.StepDpo().BuildStepPreferences(Problems(ml), options, new Progress<StepPreferenceReport>(reports.Add));

        Assert.AreEqual(12, report.TotalProblems);
        Assert.AreEqual(12, report.Problems);
        Assert.AreEqual(12L * 8, report.Sampled);
        Assert.IsTrue(report.Wrong > 0 && report.Located == report.Wrong, $"every scripted error is locatable: {report}");
        Assert.IsTrue(report.Rectified > 0 && report.Rectified <= report.Located, report.ToString());

        var rows = ReadRows(options.OutputPath!);
        Assert.AreEqual(report.Pairs, rows.Count);
        var byQuestion = s_problems.ToDictionary(p => p.Question);
        int foundByRollouts = 0;
        foreach (var row in rows)
        {
            CollectionAssert.AreEqual(s_fields, row.Keys.ToArray(), "exact fields, in order");
            var p = byQuestion[row["prompt"]];
            Assert.AreEqual("arith", row["dataset"]);
            Assert.AreEqual(p.Answer.ToString(), row["answer"]);
            // The prefix is the true steps before k, ending right after "Step k:".
            var prefix = row["initial_reason_steps"];
            int k = prefix.Split('\n').Length - 1;
            Assert.AreEqual(SolutionText.PrefixBefore(p.Steps, k), prefix);
            // chosen: the true step k (with the answer line when it is the last step); rejected: a wrong step k.
            string truth = " " + p.Steps[k - 1] + (k == p.Steps.Count ? $"\nThe answer is {p.Answer}." : "");
            Assert.AreEqual(truth, row["chosen"]);
            Assert.AreNotEqual(row["chosen"], row["rejected"]);
            string rejectedStep = row["rejected"].Trim().Split('\n')[0];
            Assert.IsTrue(rejectedStep == ScriptedArithmeticPolicy.Slip(p.Steps[k - 1]) || rejectedStep == ScriptedArithmeticPolicy.WrongOperation(p.Steps[k - 1]), rejectedStep);
            if (new ArithmeticStepVerifier().CheckStep(rejectedStep).Verdict != StepVerdict.Incorrect) foundByRollouts++;
            // full_* continue the prefix to the end; the chosen one reaches the answer, the rejected one does not.
            Assert.IsTrue(row["full_chosen"].StartsWith(row["chosen"].Split('\n')[0], StringComparison.Ordinal));
            Assert.IsTrue(row["full_rejected"].StartsWith(row["rejected"], StringComparison.Ordinal));
            Assert.IsTrue(AnswerEquivalence.IsCorrect(prefix + row["full_chosen"], row["answer"]));
            Assert.IsFalse(AnswerEquivalence.IsCorrect(prefix + row["full_rejected"], row["answer"]));
        }
        Assert.IsTrue(foundByRollouts > 0, "wrong operations with right arithmetic are found by the rollout verifier");
        Assert.IsTrue(rows.Count > foundByRollouts, "arithmetic slips are found by the arithmetic verifier");
        Assert.AreEqual(rows.Count, rows.Select(r => (r["prompt"], r["initial_reason_steps"], r["chosen"], r["rejected"])).Distinct().Count(), "no duplicate pairs");

        var answers = ReadRows(options.AnswerPairsPath!);
        Assert.AreEqual(report.AnswerPairs, answers.Count);
        Assert.IsTrue(answers.Count > 0);
        foreach (var a in answers)
        {
            Assert.AreEqual("Let's think step by step.\nStep 1:", a["initial_reason_steps"]);
            Assert.IsTrue(AnswerEquivalence.IsCorrect(a["initial_reason_steps"] + a["chosen"], a["answer"]));
            Assert.IsFalse(AnswerEquivalence.IsCorrect(a["initial_reason_steps"] + a["rejected"], a["answer"]));
            Assert.AreEqual(a["chosen"], a["full_chosen"]);
        }

        // Progress was reported after each problem, ending at the totals.
        Assert.IsTrue(reports.Count >= 12);
        Assert.AreEqual(report.Pairs, reports.MaxBy(r => r.Problems)!.Pairs);

        // A second call finds everything done and adds nothing.
        long calls = policy.Calls;
        var again = ml.StepDpo().BuildStepPreferences(Problems(ml), options);
        Assert.AreEqual(12, again.Resumed);
        Assert.AreEqual(report with { Resumed = 12 }, again);
        Assert.AreEqual(calls, policy.Calls);
        Assert.AreEqual(rows.Count, File.ReadAllLines(options.OutputPath!).Length);
    }

    [TestMethod]
    public async Task AFailureMidRunThenResumeGivesExactlyTheRowsOfAnUninterruptedRun()
    {
        var ml = new MLContext(seed: 1);
        var reference = Options(ScriptedArithmeticPolicy.Create(s_problems), "reference");
        var expected = await ml.StepDpo().BuildStepPreferencesAsync(Problems(ml), reference);

        foreach (int failAt in new[] { 1, 7, 23, 40 })
        {
            var policy = ScriptedArithmeticPolicy.Create(s_problems);
            int calls = 0;
            policy.Fail = _ => Interlocked.Increment(ref calls) == failAt ? new InvalidOperationException("killed") : null;
            var options = Options(policy, $"failed{failAt}");
            await Assert.ThrowsExactlyAsync<InvalidOperationException>(() => ml.StepDpo().BuildStepPreferencesAsync(Problems(ml), options));
            int committed = File.ReadAllLines(options.OutputPath + ".progress.jsonl").Length;
            Assert.IsTrue(committed < 12, $"fail at {failAt}: the run stopped early");

            policy.Fail = null;
            var resumed = await ml.StepDpo().BuildStepPreferencesAsync(Problems(ml), options);
            Assert.AreEqual(committed, resumed.Resumed);
            Assert.AreEqual(expected with { Resumed = committed }, resumed);
            CollectionAssert.AreEqual(SortedLines(reference.OutputPath!), SortedLines(options.OutputPath!), $"fail at {failAt}");
            CollectionAssert.AreEqual(SortedLines(reference.AnswerPairsPath!), SortedLines(options.AnswerPairsPath!), $"fail at {failAt}");
        }

        // Cancellation stops the run the same way.
        using var cts = new CancellationTokenSource();
        var cancelled = Options(ScriptedArithmeticPolicy.Create(s_problems), "cancelled", concurrency: 1);
        var progress = new SynchronousProgress(r => { if (r.Problems == 5) cts.Cancel(); });
        await Assert.ThrowsAsync<OperationCanceledException>(() => ml.StepDpo().BuildStepPreferencesAsync(Problems(ml), cancelled, progress, cts.Token));
        Assert.AreEqual(5, File.ReadAllLines(cancelled.OutputPath + ".progress.jsonl").Length);
        await ml.StepDpo().BuildStepPreferencesAsync(Problems(ml), cancelled);
        CollectionAssert.AreEqual(SortedLines(reference.OutputPath!), SortedLines(cancelled.OutputPath!));
    }

    private sealed class SynchronousProgress(Action<StepPreferenceReport> report) : IProgress<StepPreferenceReport>
    {
        public void Report(StepPreferenceReport value) => report(value);
    }

    [TestMethod]
    public async Task EveryStateAKillCanLeaveResumesToTheSameRows()
    {
        // One problem at a time, so the files are in commit order: a kill -9 leaves the progress file cut anywhere and
        // each output cut anywhere between the last committed length and the full length of the next commit.
        var ml = new MLContext(seed: 1);
        var full = Options(ScriptedArithmeticPolicy.Create(s_problems), "full", concurrency: 1);
        await ml.StepDpo().BuildStepPreferencesAsync(Problems(ml), full);
        byte[] progress = File.ReadAllBytes(full.OutputPath + ".progress.jsonl");
        byte[] pairs = File.ReadAllBytes(full.OutputPath!);
        byte[] answers = File.ReadAllBytes(full.AnswerPairsPath!);
        var lineEnds = Enumerable.Range(0, progress.Length).Where(i => progress[i] == '\n').Select(i => i + 1).ToList();
        var recorded = File.ReadAllLines(full.OutputPath + ".progress.jsonl").Select(l => JsonDocument.Parse(l).RootElement)
            .Select(e => (Out: e.GetProperty("Out").GetInt64(), Answers: e.GetProperty("Answers").GetInt64())).ToList();

        var random = new Random(3);
        for (int trial = 0; trial < 12; trial++)
        {
            int committed = random.Next(0, lineEnds.Count); // complete progress lines that survive
            long progressCut = (committed == 0 ? 0 : lineEnds[committed - 1]) + random.Next(0, 2) * random.Next(1, 20); // maybe a torn next line
            progressCut = Math.Min(progressCut, lineEnds[committed] - 1);
            long outFrom = committed == 0 ? 0 : recorded[committed - 1].Out, outTo = recorded[committed].Out;
            long ansFrom = committed == 0 ? 0 : recorded[committed - 1].Answers, ansTo = recorded[committed].Answers;
            var name = $"kill{trial}";
            var options = Options(ScriptedArithmeticPolicy.Create(s_problems), name, concurrency: 1 + trial % 3);
            File.WriteAllBytes(options.OutputPath + ".progress.jsonl", progress[..(int)progressCut]);
            File.WriteAllBytes(options.OutputPath!, pairs[..(int)random.NextInt64(outFrom, outTo + 1)]);
            File.WriteAllBytes(options.AnswerPairsPath!, answers[..(int)random.NextInt64(ansFrom, ansTo + 1)]);

            var report = await ml.StepDpo().BuildStepPreferencesAsync(Problems(ml), options);
            Assert.AreEqual(committed, report.Resumed, $"trial {trial}");
            CollectionAssert.AreEqual(SortedLines(full.OutputPath!), SortedLines(options.OutputPath!), $"trial {trial}: committed {committed}");
            CollectionAssert.AreEqual(SortedLines(full.AnswerPairsPath!), SortedLines(options.AnswerPairsPath!), $"trial {trial}");
            Assert.AreEqual(12, File.ReadAllLines(options.OutputPath + ".progress.jsonl").Length);
        }
    }

    [TestMethod]
    public async Task RealLocalModelEndToEnd()
    {
        SingleThread.Enter();
        try
        {
            // A real Qwen2 that samples one-step answers after "Step 1:": " 7*4=28.", " 7*4=5.", " 3+9=28." or " 3+9=5.".
            var successors = new Dictionary<char, string>
            {
                [':'] = " ", [' '] = "73", ['7'] = "*", ['*'] = "4", ['3'] = "+", ['+'] = "9", ['4'] = "=", ['9'] = "=",
                ['='] = "25", ['2'] = "8", ['8'] = ".", ['5'] = ".", ['.'] = BigramModel.End.ToString(),
            };
            var (model, tokenizer) = BigramModel.Create(successors);
            using var source = new LocalModelCompletionSource(model, tokenizer, BigramModel.Template, maxBatchRows: 32, ownsModel: true);
            var ml = new MLContext(seed: 1);
            var problems = ml.Data.LoadFromEnumerable(new[]
            {
                new ProblemRow { Problem = "Tom has 7 bags of 4 apples. How many apples?", Answer = "28" },
                new ProblemRow { Problem = "Ann has 7 boxes of 4 pens. How many pens?", Answer = "28" },
                new ProblemRow { Problem = "Bob has 7 cups of 4 nuts. How many nuts?", Answer = "28" },
            });
            var options = Options(source, "real", concurrency: 3);
            options.Sampling = new SamplingSettings { MaxNewTokens = 12 };
            var report = await ml.StepDpo().BuildStepPreferencesAsync(problems, options);

            Assert.AreEqual(3, report.Problems);
            Assert.AreEqual(24L, report.Sampled);
            Assert.IsTrue(report.Wrong is > 0 and <= 6, report.ToString()); // at most two distinct wrong answers per problem
            Assert.AreEqual(report.Wrong, report.Located, "every wrong sample has a wrong calculation");
            var rows = ReadRows(options.OutputPath!);
            Assert.AreEqual(report.Pairs, rows.Count);
            Assert.IsTrue(rows.Count > 0, report.ToString());
            foreach (var row in rows)
            {
                Assert.AreEqual("Let's think step by step.\nStep 1:", row["initial_reason_steps"]);
                CollectionAssert.Contains(new[] { " 7*4=28.", " 3+9=28." }, row["chosen"]);
                CollectionAssert.Contains(new[] { " 7*4=5.", " 3+9=5." }, row["rejected"]);
            }
            foreach (var a in ReadRows(options.AnswerPairsPath!))
            {
                StringAssert.EndsWith(a["chosen"], "=28.");
                StringAssert.EndsWith(a["rejected"], "=5.");
            }
        }
        finally
        {
            SingleThread.Exit();
        }
    }
}
