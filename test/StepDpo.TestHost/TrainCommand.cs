using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;

namespace StepDpo.TestHost;

/// <summary>
/// <c>train --data JSONL --model DIR --output DIR [--template NAME|TEXT] [--separator S] [--epochs N] [--batch-size N]
/// [--lr X] [--beta X] [--max-length N] [--seed N] [--checkpoint-interval N] [--kill-self-after-step N]</c>: Step-DPO
/// through the public trainer, checkpoints in OUTPUT/checkpoints (a rerun resumes from them), the trained policy in
/// OUTPUT/model. <c>--kill-self-after-step</c> SIGKILLs this process from the progress report of that step: a real
/// kill at a known point, with nothing flushed or disposed.
/// </summary>
internal static class TrainCommand
{
    /// <summary>Written (and flushed) just before the kill, so a test can tell the kill from any other death.</summary>
    public const string KillLine = "killing this process after step ";

    public static int Run(HostArguments args)
    {
        string output = Path.GetFullPath(args.Required("--output"));
        Directory.CreateDirectory(output);
        int maxLength = args.Int("--max-length", 1024);
        int killAfter = args.Int("--kill-self-after-step", 0);
        var options = new StepDpoTrainer.Options
        {
            BaseModelPath = Path.GetFullPath(args.Required("--model")),
            Template = Template(args.Optional("--template") ?? "alpaca", args.Optional("--separator")),
            Epochs = args.Int("--epochs", 4), BatchSize = args.Int("--batch-size", 8), LearningRate = args.Double("--lr", 5e-7),
            Beta = args.Double("--beta", 0.4), MaxLength = maxLength, MaxPromptLength = Math.Max(1, maxLength / 2), Seed = args.Int("--seed", 0),
            CheckpointDirectory = Path.Combine(output, "checkpoints"), CheckpointInterval = args.Int("--checkpoint-interval", 0),
            MetricsPath = Path.Combine(output, "metrics.jsonl"),
            // The trainer reports each step synchronously, after the optimizer step and before that step's checkpoint.
            Progress = killAfter > 0 ? new KillAtStep(killAfter) : null,
        };
        var ml = new MLContext(options.Seed);
        ml.Log += (_, e) =>
        {
            if (e.Message.Contains("Resumed from checkpoint", StringComparison.Ordinal)) Console.WriteLine(e.Message);
        };
        var scorer = ml.StepDpo().Trainers.StepDpo(options).Fit(ml.Data.LoadFromStepDpoJsonl(Path.GetFullPath(args.Required("--data"))));
        scorer.SavePolicy(Path.Combine(output, "model"));
        Console.WriteLine($"trained; the policy is in {Path.Combine(output, "model")}");
        return 0;
    }

    private static PromptTemplate Template(string name, string? separator) =>
        name.Contains("{instruction}", StringComparison.Ordinal) ? new PromptTemplate("custom", name, separator ?? "\n") : PromptTemplate.FromName(name);

    private sealed class KillAtStep(int step) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            if (value.Step != step) return;
            Console.WriteLine(KillLine + value.Step);
            Console.Out.Flush();
            Process.GetCurrentProcess().Kill();
            throw new InvalidOperationException("the process outlived its own kill");
        }
    }
}
