using Microsoft.ML.StepDpo.Pipeline;

namespace Microsoft.ML.StepDpo;

/// <summary>The self-generated step-preference data pipeline on <c>mlContext.StepDpo()</c>.</summary>
public static class StepPreferenceCatalogExtensions
{
    /// <summary>
    /// Builds Step-DPO training data from the policy's own mistakes (paper §3.2): samples K solutions per problem,
    /// keeps the wrong ones, finds each one's first wrong step k, samples continuations from the prefix ending at
    /// "Step k:", and pairs each distinct first step of a continuation that reaches the answer (chosen) with the wrong
    /// step (rejected). Rows are appended to <see cref="StepPreferenceOptions.OutputPath"/> in the Math-Step-DPO-10K
    /// format; a killed run called again with the same options resumes where it stopped.
    /// </summary>
    /// <param name="catalog">The Step-DPO catalog.</param>
    /// <param name="problems">The problems: text columns for the problem and the reference answer (and optionally an id).</param>
    /// <param name="options">The options; <see cref="StepPreferenceOptions.Policy"/> and <see cref="StepPreferenceOptions.OutputPath"/> are required.</param>
    /// <param name="progress">Receives the counts after each problem.</param>
    /// <param name="cancellationToken">Stops the run; problems not finished are redone on resume.</param>
    /// <returns>The per-stage counts over all runs of this output.</returns>
    public static Task<StepPreferenceReport> BuildStepPreferencesAsync(this StepDpoCatalog catalog, IDataView problems, StepPreferenceOptions options,
        IProgress<StepPreferenceReport>? progress = null, CancellationToken cancellationToken = default)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        if (problems is null) throw new ArgumentNullException(nameof(problems));
        if (options is null) throw new ArgumentNullException(nameof(options));
        var builder = new StepPreferenceBuilder(options);
        var inputs = StepPreferenceBuilder.ReadProblems(problems, options);
        return builder.RunAsync(inputs, progress, cancellationToken);
    }

    /// <summary>Synchronous <see cref="BuildStepPreferencesAsync"/>.</summary>
    public static StepPreferenceReport BuildStepPreferences(this StepDpoCatalog catalog, IDataView problems, StepPreferenceOptions options,
        IProgress<StepPreferenceReport>? progress = null, CancellationToken cancellationToken = default)
        => BuildStepPreferencesAsync(catalog, problems, options, progress, cancellationToken).GetAwaiter().GetResult();
}
