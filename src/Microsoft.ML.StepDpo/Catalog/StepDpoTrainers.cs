using Microsoft.ML.StepDpo.Training;

namespace Microsoft.ML.StepDpo;

/// <summary>The trainers of <c>mlContext.StepDpo().Trainers</c>.</summary>
public sealed class StepDpoTrainers
{
    private readonly MLContext _context;

    internal StepDpoTrainers(MLContext context) => _context = context;

    /// <summary>Step-DPO on step pairs (Math-Step-DPO-10K columns by default).</summary>
    public StepDpoTrainer StepDpo(StepDpoTrainer.Options options) => new(_context, options);

    /// <summary>Step-DPO with the common settings; the rest keep their documented defaults.</summary>
    /// <param name="baseModelPath">Hugging Face model folder to start from.</param>
    /// <param name="beta">β of the loss.</param>
    /// <param name="learningRate">Peak learning rate.</param>
    /// <param name="epochs">Epochs over the pairs.</param>
    /// <param name="batchSize">Pairs per micro-batch.</param>
    /// <param name="promptColumnName">Problem column.</param>
    /// <param name="initialReasonStepsColumnName">Correct-prefix column.</param>
    /// <param name="chosenColumnName">Preferred-step column.</param>
    /// <param name="rejectedColumnName">Erroneous-step column.</param>
    public StepDpoTrainer StepDpo(string baseModelPath, double beta = 0.4, double learningRate = 5e-7, int epochs = 4, int batchSize = 8,
        string promptColumnName = "prompt", string initialReasonStepsColumnName = "initial_reason_steps",
        string chosenColumnName = "chosen", string rejectedColumnName = "rejected") =>
        new(_context, new StepDpoTrainer.Options
        {
            BaseModelPath = baseModelPath, Beta = beta, LearningRate = learningRate, Epochs = epochs, BatchSize = batchSize,
            PromptColumnName = promptColumnName, InitialReasonStepsColumnName = initialReasonStepsColumnName,
            ChosenColumnName = chosenColumnName, RejectedColumnName = rejectedColumnName,
        });

    /// <summary>Supervised fine-tuning on prompt/response rows (loss on the response only); returns a generating transformer.</summary>
    public SftTrainer Sft(SftTrainer.Options options) => new(_context, options);

    /// <summary>
    /// Answer-level DPO (the paper's baseline): the same loss on whole solutions after the prompt alone. The
    /// options' InitialReasonStepsColumnName is ignored (there is no prefix); the options object is not changed.
    /// </summary>
    public StepDpoTrainer Dpo(StepDpoTrainer.Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new(_context, options, answerLevel: true);
    }
}
