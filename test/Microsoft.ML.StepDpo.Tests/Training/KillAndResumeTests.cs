using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Tests.Text;
using Microsoft.ML.StepDpo.Training;

namespace Microsoft.ML.StepDpo.Tests.Training;

/// <summary>
/// Faults during training: a real process killed mid-training (Step-DPO through the public trainer, run by the
/// test host's <c>train</c> command, which SIGKILLs itself at a given step) and rerun gives the uninterrupted run's
/// final weights bit for bit; checkpoints become visible only when complete, so a kill during a write or between
/// the renames of a save is harmless.
/// </summary>
[TestClass]
public sealed partial class KillAndResumeTests
{
    private static readonly string[] s_problems =
    {
        "Mia has 3 pens. Mia gets 4 more.", "Ben has 5 cards. Ben loses 2.", "Ava has 2 boxes of 6.", "Sam has 9 coins. Sam sells 4.",
        "Leo has 7 shells. Leo finds 1.", "Zoe has 8 hats. Zoe gives 3.",
    };

    internal static void WriteTinyModelAndData(string modelDir, string dataPath, TorchSharp.torch.ScalarType dtype = TorchSharp.torch.ScalarType.Float32)
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64), dtype, seed: 5);
        ModelCheckpoint.Save(model, modelDir);
        tok.Save(modelDir);
        var lines = s_problems.SelectMany((p, i) => new[]
        {
            new JsonObject { ["prompt"] = p, ["initial_reason_steps"] = "Let's think step by step.\nStep 1:", ["chosen"] = $" {i}+{i}={2 * i}.", ["rejected"] = $" {i}+{i}={2 * i + 1}." },
            new JsonObject { ["prompt"] = p, ["initial_reason_steps"] = $"Let's think step by step.\nStep 1: {i}+1={i + 1}.\nStep 2:", ["chosen"] = $" {i + 1}*2={2 * i + 2}.", ["rejected"] = $" {i + 1}*2={2 * i + 3}." },
        });
        File.WriteAllLines(dataPath, lines.Select(l => l.ToJsonString()));
    }

    // 12 pairs, batch 1, 6 epochs: 72 optimizer steps, a checkpoint every 2; the kill comes at step 11, after the
    // checkpoint of step 10 is complete and before the next one.
    private const int TotalSteps = 72;
    private const int KillStep = 11;
    private const int LastCheckpointBeforeTheKill = 10;

    private static string[] TrainArgs(string modelDir, string dataPath, string output, params string[] more) =>
    [
        "train", "--data", dataPath, "--model", modelDir, "--template", "Q: {instruction}\nA:", "--separator", " ",
        "--epochs", "6", "--batch-size", "1", "--lr", "1e-3", "--max-length", "128", "--seed", "3", "--checkpoint-interval", "2", "--output", output,
        .. more,
    ];

    /// <summary>
    /// The test host with these arguments; one torch thread, so that the tiny runs are quick on a busy machine
    /// (OpenMP threads that wait for each other crawl when the cores are shared) and all three runs alike.
    /// </summary>
    private static (int ExitCode, string Output) RunTestHost(string[] args)
    {
        var psi = FreshProcess.Start(FreshProcess.TestHostDll, args);
        psi.Environment["OMP_NUM_THREADS"] = "1";
        psi.Environment["MKL_NUM_THREADS"] = "1";
        return FreshProcess.Run(psi);
    }

    [GeneratedRegex("\"Step\":(\\d+)")]
    private static partial Regex StepField();

    private static int CheckpointStep(string output) =>
        int.Parse(StepField().Match(File.ReadAllText(Path.Combine(output, "checkpoints", "checkpoint-latest", "state.json"))).Groups[1].Value, CultureInfo.InvariantCulture);

    /// <param name="bf16">A bf16 base: full fine-tuning through fp32 master weights, which the checkpoints must carry.</param>
    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void AProcessKilledMidTrainingResumesToTheUninterruptedRunsWeightsBitForBit(bool bf16)
    {
        var root = Directory.CreateTempSubdirectory("stepdpo-kill-").FullName;
        try
        {
            var modelDir = Path.Combine(root, "base");
            var data = Path.Combine(root, "pairs.jsonl");
            WriteTinyModelAndData(modelDir, data, bf16 ? TorchSharp.torch.ScalarType.BFloat16 : TorchSharp.torch.ScalarType.Float32);

            // The uninterrupted run.
            var straight = Path.Combine(root, "straight");
            var (code, log) = RunTestHost(TrainArgs(modelDir, data, straight));
            Assert.AreEqual(0, code, log);
            Assert.AreEqual(TotalSteps, CheckpointStep(straight), "the final checkpoint records every step");

            // The same run, SIGKILLed by itself from the progress report of step 11: nothing flushed, disposed or saved.
            var killed = Path.Combine(root, "killed");
            (code, log) = RunTestHost(TrainArgs(modelDir, data, killed, "--kill-self-after-step", KillStep.ToString(CultureInfo.InvariantCulture)));
            StringAssert.Contains(log, $"killing this process after step {KillStep}");
            if (OperatingSystem.IsWindows()) Assert.AreNotEqual(0, code, log);
            else Assert.AreEqual(128 + 9, code, $"the process must die by SIGKILL: {log}");
            Assert.AreEqual(LastCheckpointBeforeTheKill, CheckpointStep(killed), "the last complete checkpoint before the kill");
            Assert.IsFalse(File.Exists(Path.Combine(killed, "model", "model.safetensors")), "the killed run must not have finished");
            Assert.AreEqual(bf16, File.Exists(Path.Combine(killed, "checkpoints", TrainingLoop<TokenizedPair>.LatestName, MixedPrecisionAdamW.MastersFile)),
                "fp32 master weights are checkpointed exactly when the model is bf16");

            // Rerunning the same command resumes from the checkpoint and ends with the same bytes.
            (code, log) = RunTestHost(TrainArgs(modelDir, data, killed));
            Assert.AreEqual(0, code, log);
            var resumedAt = Regex.Match(log, @"Resumed from checkpoint at step\s+(\d+)/(\d+)");
            Assert.IsTrue(resumedAt.Success, log);
            Assert.AreEqual(LastCheckpointBeforeTheKill, int.Parse(resumedAt.Groups[1].Value, CultureInfo.InvariantCulture), "resumed from the last complete checkpoint");
            Assert.AreEqual(TotalSteps, int.Parse(resumedAt.Groups[2].Value, CultureInfo.InvariantCulture));
            StringAssert.Contains(File.ReadAllText(Path.Combine(killed, "model", "config.json")), bf16 ? "\"bfloat16\"" : "\"float32\"");
            CollectionAssert.AreEqual(
                File.ReadAllBytes(Path.Combine(straight, "model", "model.safetensors")),
                File.ReadAllBytes(Path.Combine(killed, "model", "model.safetensors")),
                $"final weights after a kill at step {KillStep} differ from the uninterrupted run");
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
