using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo;

/// <summary>Text transforms of Step-DPO on <c>mlContext.Transforms</c>.</summary>
public static class TextCatalogExtensions
{
    /// <summary>
    /// Cuts a step-by-step solution into steps: the output is a variable-length vector of text.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="outputColumnName">Name of the output column (vector of text).</param>
    /// <param name="inputColumnName">Name of the input text column; null means <paramref name="outputColumnName"/>.</param>
    /// <param name="mode">How steps are found (default <see cref="SegmentationMode.Auto"/>).</param>
    public static StepSegmenter SegmentSteps(this TransformsCatalog catalog, string outputColumnName = "Steps",
        string? inputColumnName = null, SegmentationMode mode = SegmentationMode.Auto)
        => SegmentSteps(catalog, new StepSegmenter.Options
        {
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName ?? outputColumnName,
            Mode = mode,
        });

    /// <summary>Cuts a step-by-step solution into steps, with all options.</summary>
    public static StepSegmenter SegmentSteps(this TransformsCatalog catalog, StepSegmenter.Options options)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        return new StepSegmenter(catalog, options);
    }

    /// <summary>
    /// Extracts the final answer of a solution (last \boxed{}, "The answer is", …) and normalizes it: the output
    /// is a text column. See <see cref="AnswerExtractor"/>.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="outputColumnName">Name of the output text column.</param>
    /// <param name="inputColumnName">Name of the solution text column; null means <paramref name="outputColumnName"/>.</param>
    /// <param name="skipUnits">Keep unit words (the answer graders remove them except for some datasets). Default false.</param>
    public static ExtractAnswerEstimator ExtractAnswer(this TransformsCatalog catalog, string outputColumnName = "Answer",
        string? inputColumnName = null, bool skipUnits = false)
        => new(catalog, outputColumnName, inputColumnName ?? outputColumnName, skipUnits);

    /// <summary>
    /// Accuracy of final answers: each row's prediction (a solution, whose final answer is extracted, or an answer
    /// when <paramref name="extractFromPrediction"/> is false) against its reference answer (reduced and normalized by
    /// <see cref="Answers.AnswerEquivalence.NormalizeReference(string?)"/>: a GSM8K "… #### 72" counts as 72), with the 95%
    /// confidence interval and, when <paramref name="groupColumnName"/> is given, per-group metrics.
    /// </summary>
    public static AnswerMetrics Evaluate(this StepDpoCatalog catalog, IDataView data, string predictionColumnName = "Response",
        string referenceColumnName = "Answer", string? groupColumnName = null, bool extractFromPrediction = true)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        return AnswerEvaluator.Evaluate(data, predictionColumnName, referenceColumnName, groupColumnName, extractFromPrediction);
    }
}
