using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Tests.Text;

namespace Microsoft.ML.StepDpo.Tests.Tools;

/// <summary>The research tools' study, in a fresh process, from the committed SFT model.</summary>
[TestClass]
public sealed class StudyTests
{
    [TestMethod]
    public void StudyTrainsEachRunOnTheSamePairsAndRecordsIt()
    {
        string dir = Directory.CreateTempSubdirectory("stepdpo-study-").FullName;
        try
        {
            var (code, output) = FreshProcess.RunTools("study", "--problems", "16", "--heldout", "16", "--validation", "12", "--output", dir,
                "--run", "step,epochs=1,cut=first", "--run", "dpo,epochs=1,lr=1e-5,pairs=3", "--run", "rft,epochs=1,pairs=2", "--run", "gold,epochs=1,pairs=20",
                "--run", "rft,epochs=1,pairs=2,rounds=2");
            Assert.AreEqual(0, code, output);
            var rows = File.ReadAllLines(Path.Combine(dir, "study.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
            CollectionAssert.AreEqual(new[] { "sft", "step", "dpo", "rft", "gold", "rft", "rft" }, rows.Select(r => r["method"]!.GetValue<string>()).ToArray(), output);
            CollectionAssert.AreEqual(new[] { 1, 1, 1, 1, 1, 2 }, rows.Skip(1).Select(r => r["round"]!.GetValue<int>()).ToArray(), output);
            int stepPairs = File.ReadAllLines(Path.Combine(dir, "pairs-p16", "step-pairs-seed1.jsonl")).Length;
            int answerPairs = File.ReadAllLines(Path.Combine(dir, "pairs-p16", "answer-pairs-seed1.jsonl")).Length;
            Assert.AreEqual(Math.Min(stepPairs, answerPairs), rows[1]["pairs"]!.GetValue<int>(), "the default budget is min(step, answer) pairs");
            Assert.AreEqual(Math.Min(3, answerPairs), rows[2]["pairs"]!.GetValue<int>());
            Assert.AreEqual(1e-5, rows[2]["lr"]!.GetValue<double>());
            Assert.AreEqual(Math.Min(2, stepPairs), rows[3]["pairs"]!.GetValue<int>(), "the SFT control trains on chosen solutions of the step pairs");
            Assert.AreEqual(20, rows[4]["pairs"]!.GetValue<int>(), "gold may draw more problems than the pairs came from");
            foreach (var r in rows)
            {
                Assert.IsTrue(r["heldout"]!.GetValue<double>() is >= 0 and <= 1 && r["source"]!.GetValue<double>() is >= 0 and <= 1
                    && r["validation"]!.GetValue<double>() is >= 0 and <= 1, r.ToJsonString());
                Assert.AreEqual(12, r["validation_n"]!.GetValue<int>(), r.ToJsonString());
                // Every wrong held-out solution is classified exactly once.
                int wrong = (int)Math.Round((1 - r["heldout"]!.GetValue<double>()) * 16);
                Assert.AreEqual(wrong, r["heldout_errors"]!.AsObject().Sum(kv => kv.Value!.GetValue<int>()), r.ToJsonString());
            }
            Assert.AreEqual("first", rows[1]["cut"]!.GetValue<string>());

            // cut=first: each rejected response is the chosen one's common prefix plus one differing character.
            var cut = File.ReadAllLines(Path.Combine(dir, "cut-r1-step-pairs-seed1.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
            Assert.AreEqual(stepPairs, cut.Count);
            foreach (var row in cut)
            {
                string chosen = row["chosen"]!.GetValue<string>(), rejected = row["rejected"]!.GetValue<string>();
                Assert.IsTrue(chosen.StartsWith(rejected[..^1], StringComparison.Ordinal), row.ToJsonString());
                Assert.IsTrue(chosen.Length < rejected.Length || chosen[rejected.Length - 1] != rejected[^1], row.ToJsonString());
            }

            // rounds=2: the second round sampled its own pairs on the same 16 problems from the first round's model.
            var secondRound = Directory.GetDirectories(Path.Combine(dir, "pairs-p16"), "rft-*-round2").Single();
            var roundProblems = File.ReadAllLines(Path.Combine(secondRound, "step-pairs-seed1.jsonl")).Select(l => JsonNode.Parse(l)!["prompt"]!.GetValue<string>()).ToHashSet();
            // The pool: the study draws its source problems from the training split with seed 1000 + seed.
            var pool = Microsoft.ML.StepDpo.Tasks.ArithmeticTask.Generate(Microsoft.ML.StepDpo.Tasks.ArithmeticTaskOptions.Demo, 16, 1001,
                Microsoft.ML.StepDpo.Tasks.TaskSplit.Train).Select(p => p.Question).ToList();
            Assert.IsTrue(roundProblems.Count > 0 && roundProblems.All(prompt => pool.Any(q => prompt.Contains(q, StringComparison.Ordinal))),
                "round 2 samples the same pool");

            // A bad run is refused before any work, with the offending text.
            var (bad, badOutput) = FreshProcess.RunTools("study", "--problems", "16", "--output", dir, "--run", "step,lr");
            Assert.AreNotEqual(0, bad);
            StringAssert.Contains(badOutput, "Expected key=value");
            var (badCount, badCountOutput) = FreshProcess.RunTools("study", "--problems", "16", "--output", dir, "--run", "gold,pairs=0");
            Assert.AreNotEqual(0, badCount);
            StringAssert.Contains(badCountOutput, "positive count");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
