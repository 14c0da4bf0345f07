using System.Globalization;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// What one <c>Fit</c> of a <see cref="LanguageModelTrainer{TTransformer}"/> did: the rows it read, the examples it
/// trained on and left out, the optimizer steps, and the metric records written every
/// <see cref="LanguageModelTrainerOptions.LogInterval"/> steps. Read it from the trainer's
/// <see cref="LanguageModelTrainer{TTransformer}.LastReport"/> after <c>Fit</c> returns.
/// </summary>
public sealed class TrainingReport
{
    internal TrainingReport(int rows, int examplesUsed, int skippedEmpty, int skippedTooLong, int promptsTruncated, int responsesTruncated,
        int optimizerSteps, int resumedFromStep, IEnumerable<IReadOnlyDictionary<string, double>> history)
    {
        Rows = rows;
        ExamplesUsed = examplesUsed;
        SkippedEmpty = skippedEmpty;
        SkippedTooLong = skippedTooLong;
        PromptsTruncated = promptsTruncated;
        ResponsesTruncated = responsesTruncated;
        OptimizerSteps = optimizerSteps;
        ResumedFromStep = resumedFromStep;
        History = history.ToList();
    }

    /// <summary>Rows read from the training data.</summary>
    public int Rows { get; }

    /// <summary>Examples trained on: preference pairs (Step-DPO, DPO) or prompt/response sequences (SFT).</summary>
    public int ExamplesUsed { get; }

    /// <summary>Rows left out: <see cref="SkippedEmpty"/> + <see cref="SkippedTooLong"/>.</summary>
    public int ExamplesSkipped => SkippedEmpty + SkippedTooLong;

    /// <summary>Rows left out because the chosen or rejected step (or the SFT response, or the rendered prompt) is empty.</summary>
    public int SkippedEmpty { get; }

    /// <summary>Rows left out because they do not fit <see cref="LanguageModelTrainerOptions.MaxLength"/> tokens (for pairs: even after truncation).</summary>
    public int SkippedTooLong { get; }

    /// <summary>Pairs kept with their context cut to its last <see cref="StepDpoTrainer.Options.MaxPromptLength"/> tokens (always 0 for SFT).</summary>
    public int PromptsTruncated { get; }

    /// <summary>Pairs kept with a chosen or rejected step cut to fit (always 0 for SFT).</summary>
    public int ResponsesTruncated { get; }

    /// <summary>Optimizer steps of the run, counting those done before a resume from a checkpoint.</summary>
    public int OptimizerSteps { get; }

    /// <summary>The step this run resumed from (<see cref="LanguageModelTrainerOptions.CheckpointDirectory"/>); 0 when it started afresh.</summary>
    public int ResumedFromStep { get; }

    /// <summary>
    /// One record per log interval (and one at the last step), averaged over its steps, with TRL's names: <c>loss</c>,
    /// <c>grad_norm</c>, <c>learning_rate</c>, <c>tokens_per_s</c>, <c>step</c>, <c>epoch</c>; preference training adds
    /// <c>rewards/chosen</c>, <c>rewards/rejected</c>, <c>rewards/margins</c>, <c>rewards/accuracies</c>,
    /// <c>logps/chosen</c>, <c>logps/rejected</c>, <c>logits/chosen</c> and <c>logits/rejected</c>. The same records go to
    /// <see cref="LanguageModelTrainerOptions.MetricsPath"/> when it is set. After a resume, only the steps of this run.
    /// </summary>
    public IReadOnlyList<IReadOnlyDictionary<string, double>> History { get; }

    /// <summary>A one-line summary: rows used and left out, steps, and the last record's loss.</summary>
    public override string ToString()
    {
        var last = History.Count > 0 && History[^1].TryGetValue("loss", out double loss)
            ? string.Create(CultureInfo.InvariantCulture, $", final loss {loss:G5}") : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"{ExamplesUsed}/{Rows} rows used ({SkippedEmpty} empty, {SkippedTooLong} too long; {PromptsTruncated} prompts and " +
            $"{ResponsesTruncated} responses truncated); {OptimizerSteps} optimizer steps{last}.");
    }
}
