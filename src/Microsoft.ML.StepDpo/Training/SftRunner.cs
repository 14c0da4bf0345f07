namespace Microsoft.ML.StepDpo.Training;

/// <summary>Settings of <see cref="SftRunner"/>.</summary>
internal sealed class SftRunOptions
{
    /// <summary>Passes over the training sequences. Default 1.</summary>
    public int Epochs { get; set; } = 1;
    /// <summary>Token budget of one optimizer step (rows × padded length). Default 4096.</summary>
    public int TokensPerBatch { get; set; } = 4096;
    /// <summary>Peak learning rate. Default 2e-3 (small models trained from scratch).</summary>
    public double LearningRate { get; set; } = 2e-3;
    /// <summary>Share of steps with linear warmup before the cosine decay. Default 0.05.</summary>
    public double WarmupRatio { get; set; } = 0.05;
    /// <summary>AdamW weight decay on matrices. Default 0.1.</summary>
    public double WeightDecay { get; set; } = 0.1;
    /// <summary>Gradient clipping norm. Default 1.</summary>
    public double MaxGradNorm { get; set; } = 1.0;
    /// <summary>Seed of the batching and the data order.</summary>
    public int Seed { get; set; }
    /// <summary>Optimizer steps between metric records. Default 20.</summary>
    public int LogInterval { get; set; } = 20;
    /// <summary>Optional JSONL file for the metric records.</summary>
    public string? MetricsPath { get; set; }
    /// <summary>Optional folder for resumable checkpoints.</summary>
    public string? CheckpointDirectory { get; set; }
    /// <summary>Optimizer steps between checkpoints (0 = only at the end).</summary>
    public int CheckpointInterval { get; set; }
    public Action<string>? Log { get; set; }
    public IProgress<TrainingProgress>? Progress { get; set; }
    public CancellationToken CancellationToken { get; set; }
}

/// <summary>
/// Supervised fine-tuning of a causal LM on tokenized (prompt, response) sequences: length-grouped micro-batches
/// under a token budget, AdamW with warmup + cosine, loss on response tokens only. It is what
/// <c>ArithmeticSftRecipe</c> runs to train the built-in task's model (the demo's and <c>train-sft-demo</c>'s SFT stage);
/// <c>train --method sft</c> trains a Hugging Face model with <see cref="SftTrainer"/> instead.
/// </summary>
internal static class SftRunner
{
    /// <summary>Trains <paramref name="model"/> in place; returns the metric history.</summary>
    public static IReadOnlyList<Dictionary<string, double>> Train(ICausalLanguageModel model, IReadOnlyList<TokenizedSequence> sequences, SftRunOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequences);
        ArgumentNullException.ThrowIfNull(options);
        if (sequences.Count == 0) throw new ArgumentException("No training sequences.", nameof(sequences));
        var batches = LengthGroupedBatches.Build(sequences, options.TokensPerBatch, options.Seed);
        var loop = new TrainingLoop<TokenizedSequence[]>(model, new GroupedSftObjective(), new TrainingLoopOptions
        {
            Epochs = options.Epochs,
            BatchSize = 1,
            LearningRate = options.LearningRate,
            WarmupRatio = options.WarmupRatio,
            WeightDecay = options.WeightDecay,
            MaxGradNorm = options.MaxGradNorm,
            Seed = options.Seed,
            LogInterval = options.LogInterval,
            MetricsPath = options.MetricsPath,
            CheckpointDirectory = options.CheckpointDirectory,
            CheckpointInterval = options.CheckpointInterval,
            Log = options.Log,
            Progress = options.Progress,
            CancellationToken = options.CancellationToken,
        });
        loop.Run(batches);
        return loop.History;
    }

    /// <summary>Optimizer steps a run over <paramref name="sequences"/> will take.</summary>
    public static int TotalSteps(IReadOnlyList<TokenizedSequence> sequences, SftRunOptions options) =>
        LengthGroupedBatches.Build(sequences, options.TokensPerBatch, options.Seed).Count * options.Epochs;
}
