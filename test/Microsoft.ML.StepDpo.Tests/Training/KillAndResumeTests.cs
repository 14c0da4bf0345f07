using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Tests.Text;
using Microsoft.ML.StepDpo.Training;

namespace Microsoft.ML.StepDpo.Tests.Training;

/// <summary>
/// Faults during training: a real process killed mid-training (Step-DPO through the public trainer, run by the
/// samples app's <c>train</c> command) and rerun gives the uninterrupted run's final weights bit for bit; checkpoints
/// become visible only when complete, so a kill during a write or between the renames of a save is harmless.
/// </summary>
[TestClass]
public sealed partial class KillAndResumeTests
{
    private static readonly string[] s_problems =
    {
        "Mia has 3 pens. Mia gets 4 more.", "Ben has 5 cards. Ben loses 2.", "Ava has 2 boxes of 6.", "Sam has 9 coins. Sam sells 4.",
        "Leo has 7 shells. Leo finds 1.", "Zoe has 8 hats. Zoe gives 3.",
    };

    private static void WriteTinyModelAndData(string modelDir, string dataPath)
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64), seed: 5);
        ModelCheckpoint.Save(model, modelDir);
        tok.Save(modelDir);
        var lines = s_problems.SelectMany((p, i) => new[]
        {
            new JsonObject { ["prompt"] = p, ["initial_reason_steps"] = "Let's think step by step.\nStep 1:", ["chosen"] = $" {i}+{i}={2 * i}.", ["rejected"] = $" {i}+{i}={2 * i + 1}." },
            new JsonObject { ["prompt"] = p, ["initial_reason_steps"] = $"Let's think step by step.\nStep 1: {i}+1={i + 1}.\nStep 2:", ["chosen"] = $" {i + 1}*2={2 * i + 2}.", ["rejected"] = $" {i + 1}*2={2 * i + 3}." },
        });
        File.WriteAllLines(dataPath, lines.Select(l => l.ToJsonString()));
    }

    // 12 pairs, batch 1, 6 epochs: 72 optimizer steps, a checkpoint every 2.
    private const int TotalSteps = 72;

    private static string[] TrainArgs(string modelDir, string dataPath, string output) => new[]
    {
        "train", "--data", dataPath, "--model", modelDir, "--method", "step-dpo", "--template", "Q: {instruction}\nA:", "--separator", " ",
        "--epochs", "6", "--batch-size", "1", "--lr", "1e-3", "--max-length", "128", "--seed", "3", "--checkpoint-interval", "2", "--output", output,
    };

    /// <summary>
    /// The samples app with these arguments; one torch thread, so that the tiny runs are quick on a busy machine
    /// (OpenMP threads that wait for each other crawl when the cores are shared) and all three runs alike.
    /// </summary>
    private static ProcessStartInfo SamplesApp(string[] args)
    {
        Assert.IsTrue(File.Exists(FreshProcess.SamplesDll), $"Samples app not built at {FreshProcess.SamplesDll}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(FreshProcess.SamplesDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["OMP_NUM_THREADS"] = "1";
        psi.Environment["MKL_NUM_THREADS"] = "1";
        return psi;
    }

    private static (int ExitCode, string Output) RunToEnd(string[] args)
    {
        using var p = Process.Start(SamplesApp(args))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("training timed out");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    [GeneratedRegex("\"Step\":(\\d+)")]
    private static partial Regex StepField();

    private static int? CheckpointStep(string output)
    {
        foreach (var name in new[] { "checkpoint-latest", "checkpoint-previous" })
        {
            try { return int.Parse(StepField().Match(File.ReadAllText(Path.Combine(output, "checkpoints", name, "state.json"))).Groups[1].Value); }
            catch (IOException) { } // not there, or being renamed
        }
        return null;
    }

    [TestMethod]
    public void AProcessKilledMidTrainingResumesToTheUninterruptedRunsWeightsBitForBit()
    {
        var root = Directory.CreateTempSubdirectory("stepdpo-kill-").FullName;
        try
        {
            var modelDir = Path.Combine(root, "base");
            var data = Path.Combine(root, "pairs.jsonl");
            WriteTinyModelAndData(modelDir, data);

            // The uninterrupted run.
            var straight = Path.Combine(root, "straight");
            var (code, log) = RunToEnd(TrainArgs(modelDir, data, straight));
            Assert.AreEqual(0, code, log);
            Assert.AreEqual(TotalSteps, CheckpointStep(straight), "the final checkpoint records every step");

            // The same run, killed (whole process tree) once a checkpoint exists and training is still going.
            var killed = Path.Combine(root, "killed");
            using (var p = Process.Start(SamplesApp(TrainArgs(modelDir, data, killed)))!)
            {
                p.OutputDataReceived += (_, _) => { };
                p.ErrorDataReceived += (_, _) => { };
                p.BeginOutputReadLine();
                p.BeginErrorReadLine();
                var clock = Stopwatch.StartNew();
                while (!p.HasExited && CheckpointStep(killed) is null && clock.Elapsed < TimeSpan.FromSeconds(120)) Thread.Sleep(2);
                Assert.IsFalse(p.HasExited, "training finished before it could be killed");
                p.Kill(entireProcessTree: true);
                p.WaitForExit();
            }
            int? at = CheckpointStep(killed);
            Assert.IsNotNull(at);
            Assert.IsTrue(at > 0 && at < TotalSteps, $"killed at step {at} of {TotalSteps}: not mid-training");
            Assert.IsFalse(File.Exists(Path.Combine(killed, "model", "model.safetensors")), "the killed run must not have finished");

            // Rerunning the same command resumes from the checkpoint and ends with the same bytes.
            (code, log) = RunToEnd(TrainArgs(modelDir, data, killed));
            Assert.AreEqual(0, code, log);
            var resumedAt = Regex.Match(log, @"Resumed from checkpoint at step\s+(\d+)/(\d+)");
            Assert.IsTrue(resumedAt.Success, log);
            Assert.AreEqual(at.Value, int.Parse(resumedAt.Groups[1].Value), "resumed from the last complete checkpoint");
            Assert.AreEqual(TotalSteps, int.Parse(resumedAt.Groups[2].Value));
            CollectionAssert.AreEqual(
                File.ReadAllBytes(Path.Combine(straight, "model", "model.safetensors")),
                File.ReadAllBytes(Path.Combine(killed, "model", "model.safetensors")),
                $"final weights after a kill at step {at} differ from the uninterrupted run");
        }
        finally { Directory.Delete(root, true); }
    }

    // In process, with the toy model: what a kill can leave behind in the checkpoint folder.

    private static List<TokenizedPair> Pairs(int n, int seed) => TrainingLoopTests.Pairs(n, seed);

    private static TrainingLoopOptions LoopOptions(string? dir) => new()
    {
        Epochs = 2, BatchSize = 4, GradientAccumulationSteps = 1, LearningRate = 1e-2, WarmupRatio = 0.1,
        WeightDecay = 0.01, Seed = 13, CheckpointDirectory = dir, CheckpointInterval = 2, LogInterval = 100,
    };

    private static PreferenceObjective Objective() => new() { Beta = 0.4, ReferenceModel = ToyLanguageModel.Create(8) };

    /// <summary>Trains to the end without interruption, and, in <paramref name="dir"/>, until cancelled after <paramref name="stopAfter"/> steps.</summary>
    private static ToyLanguageModel TrainStraightAndStop(List<TokenizedPair> pairs, string dir, int stopAfter)
    {
        var straight = ToyLanguageModel.Create(8);
        new TrainingLoop<TokenizedPair>(straight, Objective(), LoopOptions(null)).Run(pairs);
        using var cts = new CancellationTokenSource();
        var o = LoopOptions(dir);
        o.CancellationToken = cts.Token;
        o.Progress = new Sync(p => { if (p.Step == stopAfter) cts.Cancel(); });
        Assert.ThrowsExactly<OperationCanceledException>(() => new TrainingLoop<TokenizedPair>(ToyLanguageModel.Create(8), Objective(), o).Run(pairs));
        return straight;
    }

    private static void AssertResumesToTheSameWeights(List<TokenizedPair> pairs, string dir, ToyLanguageModel straight, int expectedResumeStep)
    {
        var resumed = ToyLanguageModel.Create(8);
        var log = new List<string>();
        var o = LoopOptions(dir);
        o.Log = log.Add;
        new TrainingLoop<TokenizedPair>(resumed, Objective(), o).Run(pairs);
        Assert.IsTrue(log.Any(l => l.StartsWith($"Resumed from checkpoint at step {expectedResumeStep}/", StringComparison.Ordinal)), string.Join("\n", log));
        var a = straight.Snapshot();
        var b = resumed.Snapshot();
        foreach (var (name, t) in a) Assert.IsTrue(t.equal(b[name]).all().item<bool>(), $"{name} differs after resume");
        // Once a save completes nothing but the latest checkpoint is left.
        CollectionAssert.AreEquivalent(new[] { "checkpoint-latest" }, Directory.GetDirectories(dir).Select(Path.GetFileName).ToArray());
    }

    [TestMethod]
    public void AHalfWrittenCheckpointLeftByAKillIsIgnored()
    {
        var pairs = Pairs(24, 4);
        var dir = Directory.CreateTempSubdirectory("stepdpo-atomic-").FullName;
        try
        {
            var straight = TrainStraightAndStop(pairs, dir, stopAfter: 3);
            // A kill during the next save: its folder has a later step and a truncated weights file.
            var half = Path.Combine(dir, "checkpoint-writing-3f2a");
            Directory.CreateDirectory(half);
            var latest = Path.Combine(dir, "checkpoint-latest");
            File.WriteAllText(Path.Combine(half, "state.json"), File.ReadAllText(Path.Combine(latest, "state.json")).Replace("\"Step\":3", "\"Step\":4"));
            var weights = File.ReadAllBytes(Path.Combine(latest, "weights.bin"));
            File.WriteAllBytes(Path.Combine(half, "weights.bin"), weights[..(weights.Length / 2)]);
            AssertResumesToTheSameWeights(pairs, dir, straight, expectedResumeStep: 3);
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void AKillBetweenTheRenamesOfASaveResumesFromThePreviousCheckpoint()
    {
        var pairs = Pairs(24, 6);
        var dir = Directory.CreateTempSubdirectory("stepdpo-atomic-").FullName;
        try
        {
            var straight = TrainStraightAndStop(pairs, dir, stopAfter: 5);
            // The save had moved checkpoint-latest aside and its new folder was complete but not yet renamed.
            Directory.Move(Path.Combine(dir, "checkpoint-latest"), Path.Combine(dir, "checkpoint-previous"));
            Directory.CreateDirectory(Path.Combine(dir, "checkpoint-writing-77"));
            File.WriteAllText(Path.Combine(dir, "checkpoint-writing-77", "state.json"), "{\"Step\":6}");
            AssertResumesToTheSameWeights(pairs, dir, straight, expectedResumeStep: 5);
        }
        finally { Directory.Delete(dir, true); }
    }

    private sealed class Sync(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
