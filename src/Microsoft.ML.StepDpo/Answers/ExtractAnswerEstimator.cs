using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Persistence;

namespace Microsoft.ML.StepDpo.Answers;

/// <summary>
/// Estimator that maps a solution text column to its normalized final answer (text), as
/// <see cref="AnswerExtractor.Extract(string?)"/>. Create it with <c>mlContext.Transforms.ExtractAnswer(...)</c>.
/// </summary>
public sealed class ExtractAnswerEstimator : IEstimator<ExtractAnswerTransformer>
{
    private readonly string _input;
    private readonly IEstimator<ITransformer> _inner;

    internal ExtractAnswerEstimator(TransformsCatalog catalog, string outputColumnName, string inputColumnName, bool skipUnits)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        if (string.IsNullOrWhiteSpace(outputColumnName)) throw new ArgumentException("The output column name must not be empty.", nameof(outputColumnName));
        if (string.IsNullOrWhiteSpace(inputColumnName)) throw new ArgumentException("The input column name must not be empty.", nameof(inputColumnName));
        _input = inputColumnName;
        _inner = PersistedMapping.Build(
            catalog, new ExtractAnswerSettings { SkipUnits = skipUnits }, ExtractAnswerMapping.ConfigColumn, inputColumnName,
            new[] { (ExtractAnswerMapping.TextColumn, inputColumnName) },
            catalog.CustomMapping<ExtractAnswerMapping.Input, ExtractAnswerMapping.Output>(ExtractAnswerMapping.Map, ExtractAnswerMapping.ContractName),
            new[] { (ExtractAnswerMapping.AnswerColumn, outputColumnName) },
            ExtractAnswerMapping.InternalColumns);
    }

    /// <summary>Checks the schema and returns the transformer (nothing is learned).</summary>
    public ExtractAnswerTransformer Fit(IDataView input)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        CheckInputs(SchemaChecks.For(input.Schema));
        return new ExtractAnswerTransformer(_inner.Fit(input));
    }

    /// <summary>The output schema: the input plus the answer column. Throws if the input column is missing or not text.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        CheckInputs(SchemaChecks.For(inputSchema));
        return _inner.GetOutputSchema(inputSchema);
    }

    private void CheckInputs(SchemaChecks columns) => columns.RequireText(_input);
}

/// <summary>The fitted <see cref="ExtractAnswerEstimator"/>; saves and loads like <see cref="Text.StepSegmenterTransformer"/>.</summary>
public sealed class ExtractAnswerTransformer : ChainedTransformer
{
    internal ExtractAnswerTransformer(ITransformer inner) : base(inner) { }
}
