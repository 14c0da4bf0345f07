using Microsoft.ML.StepDpo.Persistence;

namespace Microsoft.ML.StepDpo.Text;

/// <summary>
/// The fitted <see cref="StepSegmenter"/>: maps a text column to a vector of steps. Saved with
/// <c>mlContext.Model.Save</c> it loads with <c>mlContext.Model.Load</c>
/// as a transformer chain that produces identical output.
/// </summary>
public sealed class StepSegmenterTransformer : ChainedTransformer
{
    internal StepSegmenterTransformer(ITransformer inner) : base(inner) { }
}
