using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Persistence;

namespace Microsoft.ML.StepDpo.Text;

/// <summary>
/// Estimator that cuts a text column holding a step-by-step solution into a variable-length vector of
/// text, one element per step. Create it with <c>mlContext.Transforms.SegmentSteps(...)</c>. It learns
/// nothing: <see cref="Fit"/> only checks the schema.
/// </summary>
public sealed class StepSegmenter : IEstimator<StepSegmenterTransformer>
{
    /// <summary>Options of <see cref="StepSegmenter"/>.</summary>
    public sealed class Options
    {
        /// <summary>Output column: a vector of text, one element per step. Default "Steps".</summary>
        public string OutputColumnName { get; set; } = "Steps";

        /// <summary>Input text column. Default "Solution".</summary>
        public string InputColumnName { get; set; } = "Solution";

        /// <summary>How steps are found. Default <see cref="SegmentationMode.Auto"/>.</summary>
        public SegmentationMode Mode { get; set; } = SegmentationMode.Auto;

        /// <summary>For <see cref="SegmentationMode.CustomPattern"/>: a .NET regular expression (multiline) whose matches start steps. Default null.</summary>
        public string? CustomPattern { get; set; }

        /// <summary>Keep "Let's think step by step." as a step of its own. Default false (it is dropped).</summary>
        public bool KeepPreamble { get; set; }

        /// <summary>What happens to a final-answer line. Default <see cref="AnswerLineHandling.KeepInLastStep"/>.</summary>
        public AnswerLineHandling AnswerLine { get; set; } = AnswerLineHandling.KeepInLastStep;

        /// <summary>Optional output column (Int32) with the number of steps. Default null (none).</summary>
        public string? StepCountColumnName { get; set; }

        /// <summary>Optional output column (vector of Int32) with each step's start offset in the input text. Default null (none).</summary>
        public string? StepOffsetsColumnName { get; set; }
    }

    private readonly Options _options;
    private readonly IEstimator<ITransformer> _inner;

    internal StepSegmenter(TransformsCatalog catalog, Options options)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if (string.IsNullOrWhiteSpace(options.OutputColumnName))
            throw new ArgumentException("The output column name must not be empty.", nameof(options));
        if (string.IsNullOrWhiteSpace(options.InputColumnName))
            throw new ArgumentException("The input column name must not be empty.", nameof(options));
        if (options.Mode == SegmentationMode.CustomPattern)
        {
            if (string.IsNullOrEmpty(options.CustomPattern))
                throw new ArgumentException("SegmentationMode.CustomPattern needs Options.CustomPattern.", nameof(options));
            _ = StepSegmentation.CompileCustom(options.CustomPattern); // throws ArgumentException for a bad pattern
        }

        var settings = new SegmentationSettings
        {
            Mode = options.Mode,
            CustomPattern = options.Mode == SegmentationMode.CustomPattern ? options.CustomPattern : null,
            KeepPreamble = options.KeepPreamble,
            AnswerLine = options.AnswerLine,
        };
        var outputs = new List<(string, string)> { (StepSegmenterMapping.StepsColumn, options.OutputColumnName) };
        if (options.StepCountColumnName is { Length: > 0 } countName)
            outputs.Add((StepSegmenterMapping.CountColumn, countName));
        if (options.StepOffsetsColumnName is { Length: > 0 } offsetsName)
            outputs.Add((StepSegmenterMapping.OffsetsColumn, offsetsName));
        _inner = PersistedMapping.Build(
            catalog, settings, StepSegmenterMapping.ConfigColumn, options.InputColumnName,
            new[] { (StepSegmenterMapping.TextColumn, options.InputColumnName) },
            catalog.CustomMapping<StepSegmenterMapping.Input, StepSegmenterMapping.Output>(
                StepSegmenterMapping.Map, StepSegmenterMapping.ContractName),
            outputs, StepSegmenterMapping.InternalColumns);
    }

    /// <summary>Checks the schema and returns the transformer (nothing is learned).</summary>
    public StepSegmenterTransformer Fit(IDataView input)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        CheckInputs(SchemaChecks.For(input.Schema));
        return new StepSegmenterTransformer(_inner.Fit(input));
    }

    /// <summary>The output schema: the input plus the step columns. Throws if the input column is missing or not text.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        CheckInputs(SchemaChecks.For(inputSchema));
        return _inner.GetOutputSchema(inputSchema);
    }

    private void CheckInputs(SchemaChecks columns) => columns.RequireText(_options.InputColumnName);
}
