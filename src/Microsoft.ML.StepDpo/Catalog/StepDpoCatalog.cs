using Microsoft.ML.Runtime;

namespace Microsoft.ML.StepDpo;

/// <summary>
/// Entry point for Step-DPO components on an <see cref="MLContext"/>: <c>mlContext.StepDpo()</c>.
/// Trainers, evaluation and the step-preference data pipeline hang off this catalog.
/// </summary>
public sealed class StepDpoCatalog
{
    internal StepDpoCatalog(MLContext context)
    {
        Context = context ?? throw new ArgumentNullException(nameof(context));
    }

    /// <summary>The ML.NET context this catalog belongs to (its log, seed and device settings are used).</summary>
    public MLContext Context { get; }

    /// <summary>Step-DPO, answer-level DPO and SFT trainers.</summary>
    public StepDpoTrainers Trainers => new(Context);
}

/// <summary>Extension methods that expose Step-DPO on <see cref="MLContext"/>.</summary>
public static class StepDpoCatalogExtensions
{
    /// <summary>The Step-DPO catalog of this context.</summary>
    public static StepDpoCatalog StepDpo(this MLContext mlContext) => new(mlContext);
}
