using System.Globalization;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// Settings every trainer of this library shares (the starting model, the optimizer loop, checkpoints and
/// reporting). <see cref="StepDpoTrainer.Options"/> and <see cref="SftTrainer.Options"/> add their own and set
/// their own defaults for <see cref="LearningRate"/> and <see cref="Epochs"/>.
/// </summary>
public abstract class LanguageModelTrainerOptions
{
    private protected LanguageModelTrainerOptions(double learningRate, int epochs)
    {
        LearningRate = learningRate;
        Epochs = epochs;
    }

    /// <summary>Hugging Face model folder (config.json, safetensors, tokenizer.json) to start from.</summary>
    public string? BaseModelPath { get; set; }
    internal Qwen2ForCausalLM? BaseModel { get; set; }
    internal ByteLevelBpeTokenizer? BaseTokenizer { get; set; }

    /// <summary>Prompt template. Default alpaca, the default of the Step-DPO authors' train.py (github.com/dvlab-research/Step-DPO); Qwen models usually use <see cref="PromptTemplate.Qwen2Boxed"/>.</summary>
    public PromptTemplate Template { get; set; } = PromptTemplate.Alpaca;

    /// <summary>Peak learning rate (Step-DPO default 5e-7, as in the paper's runs; SFT default 2e-5).</summary>
    public double LearningRate { get; set; }
    /// <summary>Fraction of optimizer steps of linear warmup before the cosine decay. Default 0.1.</summary>
    public double WarmupRatio { get; set; } = 0.1;
    /// <summary>AdamW weight decay (not applied to biases and norms). Default 0.</summary>
    public double WeightDecay { get; set; }
    /// <summary>Epochs over the data (Step-DPO default 4, as the paper for models over 30B; SFT default 3).</summary>
    public int Epochs { get; set; }
    /// <summary>Examples (pairs or sequences) per micro-batch. Default 8.</summary>
    public int BatchSize { get; set; } = 8;
    /// <summary>Micro-batches per optimizer step. Default 1.</summary>
    public int GradientAccumulationSteps { get; set; } = 1;
    /// <summary>Gradient clipping (global L2 norm). Default 1.0.</summary>
    public double MaxGradNorm { get; set; } = 1.0;
    /// <summary>Longest sequence in tokens. Default 1024.</summary>
    public int MaxLength { get; set; } = 1024;

    /// <summary>Train LoRA adapters instead of all weights. Default false.</summary>
    public bool UseLora { get; set; }
    /// <summary>LoRA settings when <see cref="UseLora"/> is on.</summary>
    public LoraSettings Lora { get; set; } = new();

    /// <summary>
    /// Recompute each decoder layer's activations in the backward pass instead of keeping them (gradient checkpointing, as
    /// the paper's runs): activation memory of one layer instead of all, for about one more forward pass of compute. The
    /// gradients are the same. Default false.
    /// </summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>Torch intra-op threads; null keeps TorchSharp's default.</summary>
    public int? Threads { get; set; }
    /// <summary>
    /// On Linux with glibc, keep freed native (tensor) memory in the process for reuse instead of returning it to the
    /// OS after every step: about 14% more training tokens/s measured (docs/benchmarks.md), for a process that keeps its peak native heap
    /// until it exits. Process-wide once set. Default true.
    /// </summary>
    public bool RetainFreedNativeMemory { get; set; } = true;
    /// <summary>Seed of data order and dropout; null draws one from the MLContext.</summary>
    public int? Seed { get; set; }
    /// <summary>
    /// Folder for checkpoints; null for none. A Fit with a checkpoint there resumes it when it was made by the same run
    /// (see <see cref="RestartFromScratch"/>); the folder is locked against a second writer for the whole Fit.
    /// </summary>
    public string? CheckpointDirectory { get; set; }
    /// <summary>
    /// What to do with a checkpoint already in <see cref="CheckpointDirectory"/>. Default false: resume from it when it was
    /// made from the same base model, data and options (every option that changes the math), and refuse one made from
    /// anything else with an error naming each item that differs (old → new). True: discard it and train from step 0.
    /// </summary>
    public bool RestartFromScratch { get; set; }
    /// <summary>Optimizer steps between checkpoints (0: only at the end, on cancellation and on a NaN stop). Default 0.</summary>
    public int CheckpointInterval { get; set; }
    /// <summary>Optimizer steps between metric records (MLContext.Log, metrics file). Default 10.</summary>
    public int LogInterval { get; set; } = 10;
    /// <summary>Optional JSONL file for the metric records (TRL names).</summary>
    public string? MetricsPath { get; set; }
    /// <summary>Receives progress after every optimizer step.</summary>
    public IProgress<TrainingProgress>? Progress { get; set; }
    /// <summary>Stops training at the next step, after saving a resumable checkpoint.</summary>
    public CancellationToken CancellationToken { get; set; }

    internal void CheckBaseModel()
    {
        if (BaseModelPath is null && BaseModel is null)
            throw new ArgumentException("Set Options.BaseModelPath to a Hugging Face model folder.", "options");
    }

    /// <summary>
    /// The options that change the math of training, by name, beyond those of the optimizer loop (which it records itself):
    /// what a checkpoint records so that a resume with other values is refused.
    /// </summary>
    internal virtual IEnumerable<KeyValuePair<string, string>> MathSettings()
    {
        yield return new("template", Template.Name);
        yield return new("max length", MaxLength.ToString(CultureInfo.InvariantCulture));
        yield return new("LoRA", UseLora
            ? string.Create(CultureInfo.InvariantCulture, $"r={Lora.Rank} alpha={Lora.Alpha:R} dropout={Lora.Dropout:R} targets={string.Join(",", Lora.TargetModules)}")
            : "off");
    }

    /// <summary>The optimizer loop's settings for one run.</summary>
    internal TrainingLoopOptions ToLoopOptions(int seed, Action<string> log) => new()
    {
        RestartFromScratch = RestartFromScratch,
        Epochs = Epochs, BatchSize = BatchSize, GradientAccumulationSteps = GradientAccumulationSteps, LearningRate = LearningRate,
        WarmupRatio = WarmupRatio, WeightDecay = WeightDecay, MaxGradNorm = MaxGradNorm, Seed = seed,
        CheckpointDirectory = CheckpointDirectory, CheckpointInterval = CheckpointInterval, LogInterval = LogInterval,
        MetricsPath = MetricsPath, Log = log, Progress = Progress, CancellationToken = CancellationToken,
        RetainFreedNativeMemory = RetainFreedNativeMemory,
    };
}
