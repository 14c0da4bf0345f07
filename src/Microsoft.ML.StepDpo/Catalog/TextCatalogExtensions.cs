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
}
