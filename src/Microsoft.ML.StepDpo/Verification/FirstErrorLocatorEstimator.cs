using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Persistence;

namespace Microsoft.ML.StepDpo.Verification;

/// <summary>
/// Estimator that finds the first wrong step of each row's solution with step verifiers tried in order (see
/// <see cref="IStepVerifier"/>). Create it with <c>mlContext.Transforms.LocateFirstError(...)</c>. Outputs: the
/// first wrong step (Int32, 1-based, -1 when none is found), one verdict per step ("correct", "neutral",
/// "incorrect", "unknown") and a short evidence text. It learns nothing: <see cref="Fit"/> only checks the schema.
/// </summary>
/// <remarks>
/// For each step the first verifier whose verdict is not "unknown" decides; the first step decided incorrect (or
/// neutral, with <see cref="Options.NeutralIsError"/>) is the error. A locator of <see cref="ArithmeticStepVerifier"/>s
/// only saves and loads with <c>mlContext.Model</c>; verifiers that need a live model or chat client (rollouts, a judge,
/// your own) work in memory, and saving such a transformer throws <see cref="InvalidOperationException"/>.
/// </remarks>
public sealed class FirstErrorLocatorEstimator : IEstimator<FirstErrorLocatorTransformer>
{
    /// <summary>Options of <see cref="FirstErrorLocatorEstimator"/>.</summary>
    public sealed class Options
    {
        /// <summary>Input text column with the problem. Default "Problem".</summary>
        public string ProblemColumnName { get; set; } = "Problem";

        /// <summary>Input column with the steps: a vector of text, e.g. from <c>SegmentSteps</c>. Default "Steps".</summary>
        public string StepsColumnName { get; set; } = "Steps";

        /// <summary>Input text column with the reference final answer; null when there is none. Default "Answer".</summary>
        public string? ReferenceAnswerColumnName { get; set; } = "Answer";

        /// <summary>Input text column with a correct reference solution (judges use it); null when there is none. Default null.</summary>
        public string? ReferenceSolutionColumnName { get; set; }

        /// <summary>Output Int32 column: the first wrong step, 1-based; -1 when none is found. Default "FirstErrorStep".</summary>
        public string FirstErrorStepColumnName { get; set; } = "FirstErrorStep";

        /// <summary>Output column: vector of text, one verdict per step. Default "StepVerdicts".</summary>
        public string VerdictsColumnName { get; set; } = "StepVerdicts";

        /// <summary>Output text column: why the first error is one ("step 3 [arithmetic]: 12+54=68, but …"); empty when none. Default "ErrorEvidence".</summary>
        public string EvidenceColumnName { get; set; } = "ErrorEvidence";

        /// <summary>The verifiers, in the order they are asked. Default: one <see cref="ArithmeticStepVerifier"/>.</summary>
        public IList<IStepVerifier> Verifiers { get; set; } = new List<IStepVerifier> { new ArithmeticStepVerifier() };

        /// <summary>Count a step judged neutral as the error, as the Step-DPO authors' judge protocol does. Default true.</summary>
        public bool NeutralIsError { get; set; } = true;
    }

    private readonly Options _options;
    private readonly IEstimator<ITransformer> _inner;
    private readonly string? _notPersistable;

    internal FirstErrorLocatorEstimator(TransformsCatalog catalog, Options options)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        foreach (var (name, value) in new[]
        {
            (nameof(Options.ProblemColumnName), options.ProblemColumnName), (nameof(Options.StepsColumnName), options.StepsColumnName),
            (nameof(Options.FirstErrorStepColumnName), options.FirstErrorStepColumnName), (nameof(Options.VerdictsColumnName), options.VerdictsColumnName),
            (nameof(Options.EvidenceColumnName), options.EvidenceColumnName),
        })
        {
            if (string.IsNullOrWhiteSpace(value)) throw new ArgumentException($"{name} must not be empty.", nameof(options));
        }
        if (options.Verifiers is null || options.Verifiers.Count == 0)
            throw new ArgumentException("At least one verifier is needed.", nameof(options));
        if (options.Verifiers.Any(v => v is null))
            throw new ArgumentException("A verifier is null.", nameof(options));

        bool hasAnswer = !string.IsNullOrEmpty(options.ReferenceAnswerColumnName);
        bool hasSolution = !string.IsNullOrEmpty(options.ReferenceSolutionColumnName);
        var arithmetic = options.Verifiers.OfType<ArithmeticStepVerifier>().ToList();
        bool persistable = arithmetic.Count == options.Verifiers.Count
            && arithmetic.Select(a => a.ConfirmsCorrectCalculations).Distinct().Count() == 1;
        var settings = new LocatorSettings
        {
            Verifiers = persistable ? arithmetic.Select(a => a.Name).ToList() : new List<string>(),
            ConfirmsCorrectCalculations = persistable && arithmetic[0].ConfirmsCorrectCalculations,
            NeutralIsError = options.NeutralIsError,
            HasReferenceAnswer = hasAnswer,
            HasReferenceSolution = hasSolution,
        };

        IEstimator<ITransformer> mapping;
        if (persistable)
        {
            mapping = catalog.CustomMapping<FirstErrorLocatorMapping.Input, FirstErrorLocatorMapping.Output>(
                FirstErrorLocatorMapping.Map, FirstErrorLocatorMapping.ContractName);
        }
        else
        {
            _notPersistable = string.Join(", ", options.Verifiers.Where(v => v is not ArithmeticStepVerifier).Select(v => v.Name));
            var locator = new FirstErrorLocator(options.Verifiers.ToArray(), options.NeutralIsError);
            mapping = catalog.CustomMapping<FirstErrorLocatorMapping.Input, FirstErrorLocatorMapping.Output>(
                (i, o) => FirstErrorLocatorMapping.MapWith(locator, hasAnswer, hasSolution, i, o), contractName: null);
        }

        _inner = PersistedMapping.Build(
            catalog, settings, FirstErrorLocatorMapping.ConfigColumn, options.ProblemColumnName,
            new[]
            {
                (FirstErrorLocatorMapping.ProblemColumn, options.ProblemColumnName),
                (FirstErrorLocatorMapping.StepsColumn, options.StepsColumnName),
                // Absent optional inputs are fed the problem text and ignored (the mapping's input type is fixed).
                (FirstErrorLocatorMapping.AnswerColumn, hasAnswer ? options.ReferenceAnswerColumnName! : options.ProblemColumnName),
                (FirstErrorLocatorMapping.SolutionColumn, hasSolution ? options.ReferenceSolutionColumnName! : options.ProblemColumnName),
            },
            mapping,
            new[]
            {
                (FirstErrorLocatorMapping.FirstErrorColumn, options.FirstErrorStepColumnName),
                (FirstErrorLocatorMapping.VerdictsColumn, options.VerdictsColumnName),
                (FirstErrorLocatorMapping.EvidenceColumn, options.EvidenceColumnName),
            },
            FirstErrorLocatorMapping.InternalColumns);
    }

    /// <summary>Checks the schema and returns the transformer (nothing is learned).</summary>
    public FirstErrorLocatorTransformer Fit(IDataView input)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        CheckInputs(SchemaChecks.For(input.Schema));
        return new FirstErrorLocatorTransformer(_inner.Fit(input), _notPersistable);
    }

    /// <summary>
    /// The output schema: the input plus the first-error, verdicts and evidence columns. Throws if an input column is
    /// missing or of the wrong type (the steps a variable-length vector of text, the others text).
    /// </summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        CheckInputs(SchemaChecks.For(inputSchema));
        return _inner.GetOutputSchema(inputSchema);
    }

    private void CheckInputs(SchemaChecks columns)
    {
        foreach (var (name, vector) in Inputs())
        {
            if (vector) columns.RequireTextVector(name);
            else columns.RequireText(name);
        }
    }

    private IEnumerable<(string Name, bool Vector)> Inputs()
    {
        yield return (_options.ProblemColumnName, false);
        yield return (_options.StepsColumnName, true);
        if (!string.IsNullOrEmpty(_options.ReferenceAnswerColumnName)) yield return (_options.ReferenceAnswerColumnName, false);
        if (!string.IsNullOrEmpty(_options.ReferenceSolutionColumnName)) yield return (_options.ReferenceSolutionColumnName, false);
    }
}
