using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;
using Spectre.Console;

namespace StepDpo.Samples;

/// <summary>
/// Trains a model on a JSONL file: Step-DPO (Math-Step-DPO-10K rows), answer-level DPO (prompt, chosen and
/// rejected whole solutions) or SFT (prompt and response). Writes a Hugging Face folder and an ML.NET zip
/// (the step scorer for the preference methods, the generating model for SFT).
/// </summary>
internal sealed class TrainCommand : ISampleCommand
{
    public Command Build()
    {
        var data = new Option<FileInfo>("--data") { Description = "Training JSONL.", Required = true };
        var model = new Option<DirectoryInfo>("--model") { Description = "Hugging Face model folder to start from (config.json, safetensors, tokenizer.json).", Required = true };
        var method = new Option<string>("--method") { Description = "step-dpo, dpo or sft.", DefaultValueFactory = _ => "step-dpo" };
        method.AcceptOnlyFromAmong("step-dpo", "dpo", "sft");
        var template = new Option<string>("--template") { Description = $"Prompt template: {string.Join(", ", PromptTemplate.BuiltIn.Keys)}, or a custom text with {{instruction}}.", DefaultValueFactory = _ => "alpaca" };
        var separator = new Option<string?>("--separator") { Description = "Separator after a custom template (default \"\\n\")." };
        var lora = new Option<bool>("--lora") { Description = "Train LoRA adapters (rank 8, alpha 16) instead of all weights." };
        var epochs = new Option<int>("--epochs") { Description = "Epochs.", DefaultValueFactory = _ => 4 };
        var beta = new Option<double>("--beta") { Description = "β (preference methods).", DefaultValueFactory = _ => 0.4 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate.", DefaultValueFactory = _ => 5e-7 };
        var batch = new Option<int>("--batch-size") { Description = "Pairs (or sequences) per micro-batch.", DefaultValueFactory = _ => 8 };
        var maxLength = new Option<int>("--max-length") { Description = "Longest sequence in tokens.", DefaultValueFactory = _ => 1024 };
        var seed = new Option<int>("--seed") { Description = "Seed.", DefaultValueFactory = _ => 0 };
        var promptField = new Option<string>("--prompt-field") { Description = "Prompt field.", DefaultValueFactory = _ => "prompt" };
        var responseField = new Option<string>("--response-field") { Description = "Response field (sft).", DefaultValueFactory = _ => "response" };
        var output = new Option<DirectoryInfo>("--output") { Description = "Output folder.", Required = true };
        var checkpointInterval = new Option<int>("--checkpoint-interval")
        {
            Description = "Optimizer steps between checkpoints in OUTPUT/checkpoints (0: only at the end and on Ctrl+C). Rerunning the same command resumes from there.",
            DefaultValueFactory = _ => 0,
        };
        var gradientCheckpointing = new Option<bool>("--gradient-checkpointing")
        {
            Description = "Recompute each layer's activations in the backward pass instead of keeping them: far less memory for about one more forward pass; the same gradients.",
        };
        var restart = new Option<bool>("--restart")
        {
            Description = "Discard the checkpoint in OUTPUT/checkpoints and train from step 0. Without it, a checkpoint made from another base model, data or options is refused, naming what differs.",
        };
        var cmd = new Command("train", "Train with Step-DPO, DPO or SFT; writes a Hugging Face folder (and the step scorer zip).")
        {
            data, model, method, template, separator, lora, epochs, beta, lr, batch, maxLength, seed, promptField, responseField, output, checkpointInterval, restart, gradientCheckpointing,
        };
        cmd.SetAction(p => Run(new Args(p.GetValue(data)!, p.GetValue(model)!, p.GetValue(method)!, ResolveTemplate(p.GetValue(template)!, p.GetValue(separator)),
            p.GetValue(lora), p.GetValue(epochs), p.GetValue(beta), p.GetValue(lr), p.GetValue(batch), p.GetValue(maxLength), p.GetValue(seed),
            p.GetValue(promptField)!, p.GetValue(responseField)!, p.GetValue(output)!, p.GetValue(checkpointInterval), p.GetValue(restart), p.GetValue(gradientCheckpointing))));
        return cmd;
    }

    private sealed record Args(FileInfo Data, DirectoryInfo Model, string Method, PromptTemplate Template, bool Lora, int Epochs, double Beta,
        double LearningRate, int BatchSize, int MaxLength, int Seed, string PromptField, string ResponseField, DirectoryInfo Output, int CheckpointInterval, bool Restart,
        bool GradientCheckpointing);

    internal static PromptTemplate ResolveTemplate(string name, string? separator) =>
        PromptTemplate.BuiltIn.TryGetValue(name, out var t) ? t
        : name.Contains("{instruction}", StringComparison.Ordinal) ? new PromptTemplate("custom", name, separator ?? "\n")
        : throw new ArgumentException($"Unknown template '{name}': use one of {string.Join(", ", PromptTemplate.BuiltIn.Keys)} or a text containing {{instruction}}.");

    private static int Run(Args a)
    {
        JsonlInput.RequireFile(a.Data, "--data");
        if (!a.Model.Exists) throw new UsageException($"{a.Model.FullName}: no such model folder (--model); give a Hugging Face model folder.");
        if (a.Method == "sft") JsonlInput.CheckFields(a.Data, ("--prompt-field", a.PromptField), ("--response-field", a.ResponseField));
        else if (a.Method == "dpo") JsonlInput.CheckFields(a.Data, ("--prompt-field", a.PromptField));
        a.Output.Create();
        // One writer for the whole output folder, including the model files written after Fit.
        using var writer = Microsoft.ML.StepDpo.Data.OutputLock.ForFolder(a.Output.FullName, "The output folder");
        var ml = new MLContext(a.Seed);
        return a.Method == "sft" ? RunSft(a) : RunPreference(ml, a);
    }

    private static int RunPreference(MLContext ml, Args a)
    {
        bool step = a.Method == "step-dpo";
        var data = step ? ml.Data.LoadFromStepDpoJsonl(a.Data.FullName) : ml.Data.LoadFromJsonl(a.Data.FullName, a.PromptField, "chosen", "rejected");
        var options = new StepDpoTrainer.Options
        {
            BaseModelPath = a.Model.FullName, Template = a.Template, Beta = a.Beta, LearningRate = a.LearningRate, Epochs = a.Epochs,
            BatchSize = a.BatchSize, MaxLength = a.MaxLength, MaxPromptLength = Math.Max(1, a.MaxLength / 2), UseLora = a.Lora, Seed = a.Seed,
            GradientCheckpointing = a.GradientCheckpointing,
            PromptColumnName = a.PromptField, CheckpointDirectory = Path.Combine(a.Output.FullName, "checkpoints"), CheckpointInterval = a.CheckpointInterval, RestartFromScratch = a.Restart,
            MetricsPath = Path.Combine(a.Output.FullName, "metrics.jsonl"),
            // A scorer too large to embed in the zip references the trained policy in OUTPUT/model (and the base model folder).
            ScorerWeights = new() { PolicyDirectory = Path.Combine(a.Output.FullName, "model") },
        };
        ml.Log += (_, e) => { if (e.Message.Contains("rows used", StringComparison.Ordinal) || e.Message.Contains("Resumed from checkpoint", StringComparison.Ordinal)) AnsiConsole.WriteLine(e.Message); };
        var trainer = step ? ml.StepDpo().Trainers.StepDpo(options) : ml.StepDpo().Trainers.Dpo(options);
        var scorer = ConsoleProgress.Run($"{a.Method} training", line =>
        {
            options.Progress = new InlineProgress<TrainingProgress>(p => line.Report(p.Step, p.TotalSteps,
                $"{a.Method} step {p.Step}/{p.TotalSteps} loss {p.Metrics.GetValueOrDefault("loss"):F4} margin {p.Metrics.GetValueOrDefault("rewards/margins"):F3}"));
            return trainer.Fit(data);
        });
        var zip = Path.Combine(a.Output.FullName, "model.zip");
        ml.Model.SaveAtomically(scorer, null, zip);
        var hf = Path.Combine(a.Output.FullName, "model");
        scorer.SavePolicy(hf); // nothing to do when the scorer references that folder: the trainer wrote it
        AnsiConsole.MarkupLineInterpolated($"Wrote the step scorer to [green]{zip}[/] and the trained model to [green]{hf}[/].");
        return 0;
    }

    private static int RunSft(Args a)
    {
        var ml = new MLContext(a.Seed);
        var data = ml.Data.LoadFromJsonl(a.Data.FullName, a.PromptField, a.ResponseField);
        var options = new SftTrainer.Options
        {
            BaseModelPath = a.Model.FullName, Template = a.Template, LearningRate = a.LearningRate, Epochs = a.Epochs, BatchSize = a.BatchSize,
            MaxLength = a.MaxLength, UseLora = a.Lora, Seed = a.Seed, PromptColumnName = a.PromptField, ResponseColumnName = a.ResponseField,
            GradientCheckpointing = a.GradientCheckpointing,
            CheckpointDirectory = Path.Combine(a.Output.FullName, "checkpoints"), CheckpointInterval = a.CheckpointInterval, RestartFromScratch = a.Restart, MetricsPath = Path.Combine(a.Output.FullName, "metrics.jsonl"),
        };
        ml.Log += (_, e) => { if (e.Message.Contains("rows used", StringComparison.Ordinal) || e.Message.Contains("Resumed from checkpoint", StringComparison.Ordinal)) AnsiConsole.WriteLine(e.Message); };
        var trainer = ml.StepDpo().Trainers.Sft(options);
        var model = ConsoleProgress.Run("sft training", line =>
        {
            options.Progress = new InlineProgress<TrainingProgress>(p => line.Report(p.Step, p.TotalSteps,
                $"sft step {p.Step}/{p.TotalSteps} loss {p.Metrics.GetValueOrDefault("loss"):F4}"));
            return trainer.Fit(data);
        });
        var hf = Path.Combine(a.Output.FullName, "model");
        model.SaveModel(hf);
        var zip = Path.Combine(a.Output.FullName, "model.zip");
        ml.Model.SaveAtomically(model, null, zip);
        AnsiConsole.MarkupLineInterpolated($"Wrote the trained model to [green]{hf}[/] and the generating ML.NET model to [green]{zip}[/].");
        return 0;
    }
}
