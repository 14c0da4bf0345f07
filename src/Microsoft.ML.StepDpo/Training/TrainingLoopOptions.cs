using Microsoft.ML.StepDpo.Data;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>Settings of <see cref="TrainingLoop{TExample}"/>. Defaults follow the Step-DPO paper's runs where they apply.</summary>
internal sealed class TrainingLoopOptions
{
    public int Epochs { get; set; } = 1;
    public int BatchSize { get; set; } = 8;
    public int GradientAccumulationSteps { get; set; } = 1;
    public double LearningRate { get; set; } = 5e-7;
    public double WarmupRatio { get; set; } = 0.1;
    public double WeightDecay { get; set; } = 0.0;
    public double MaxGradNorm { get; set; } = 1.0;
    public int Seed { get; set; }
    /// <summary>Folder for checkpoints; null disables checkpointing (and resuming).</summary>
    public string? CheckpointDirectory { get; set; }
    /// <summary>
    /// What the run is made from beyond the loop's own settings and data (base model, method, loss options…), by name.
    /// Recorded in every checkpoint; a resume with any other value is refused, naming the differences.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>> RunIdentity { get; set; } = Array.Empty<KeyValuePair<string, string>>();
    /// <summary>Discard a checkpoint already in <see cref="CheckpointDirectory"/> and train from step 0.</summary>
    public bool RestartFromScratch { get; set; }
    /// <summary>The caller already holds <see cref="OutputLock"/> on <see cref="CheckpointDirectory"/> (a trainer's Fit does, for the whole run).</summary>
    public bool CallerHoldsOutputLock { get; set; }
    /// <summary>Optimizer steps between checkpoints; 0 = only at the end, on cancellation and on a NaN stop.</summary>
    public int CheckpointInterval { get; set; }
    /// <summary>Optimizer steps between metric records.</summary>
    public int LogInterval { get; set; } = 10;
    /// <summary>Optional JSONL file that receives one metrics record per log interval.</summary>
    public string? MetricsPath { get; set; }
    /// <summary>Keep freed native memory for reuse (<see cref="Modeling.NativeHeap"/>); default true.</summary>
    public bool RetainFreedNativeMemory { get; set; } = true;
    /// <summary>
    /// Fold the gradients into fp32 sums after every backward, the last of a step too (<see cref="MixedPrecisionAdamW"/>'s
    /// plain path, which holds a model's worth of fp32 gradients until the step ends): the reference that the default
    /// one-parameter-at-a-time step is tested against. Same numbers either way. Default false.
    /// </summary>
    public bool FoldGradientsAfterEveryBackward { get; set; }
    public Action<string>? Log { get; set; }
    public IProgress<TrainingProgress>? Progress { get; set; }
    public CancellationToken CancellationToken { get; set; }

    public void Validate()
    {
        if (Epochs < 1) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "Must be at least 1.");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "Must be at least 1.");
        if (GradientAccumulationSteps < 1) throw new ArgumentOutOfRangeException(nameof(GradientAccumulationSteps), GradientAccumulationSteps, "Must be at least 1.");
        if (!(LearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "Must be positive.");
        if (WarmupRatio is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(WarmupRatio), WarmupRatio, "Must be in [0, 1].");
        if (WeightDecay < 0) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "Must be non-negative.");
        if (!(MaxGradNorm > 0)) throw new ArgumentOutOfRangeException(nameof(MaxGradNorm), MaxGradNorm, "Must be positive.");
        if (CheckpointInterval < 0) throw new ArgumentOutOfRangeException(nameof(CheckpointInterval), CheckpointInterval, "Must be non-negative.");
        if (LogInterval < 1) throw new ArgumentOutOfRangeException(nameof(LogInterval), LogInterval, "Must be at least 1.");
    }
}

/// <summary>Where training stands, reported after every optimizer step.</summary>
/// <param name="Step">Optimizer steps done.</param>
/// <param name="TotalSteps">Optimizer steps in the whole run.</param>
/// <param name="Epoch">0-based epoch of the latest step.</param>
/// <param name="Metrics">The latest step's metrics (TRL names: loss, rewards/margins, …).</param>
public sealed record TrainingProgress(int Step, int TotalSteps, int Epoch, IReadOnlyDictionary<string, double> Metrics);
