using Microsoft.ML.StepDpo.Verification;

namespace Microsoft.ML.StepDpo;

/// <summary>First-error location on <c>mlContext.Transforms</c>.</summary>
public static class VerificationCatalogExtensions
{
    /// <summary>
    /// Finds the first wrong step of each solution: outputs "FirstErrorStep" (Int32, 1-based, -1 for none),
    /// "StepVerdicts" (vector of text) and "ErrorEvidence" (text). See <see cref="FirstErrorLocatorEstimator"/>.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="problemColumnName">Input text column with the problem.</param>
    /// <param name="stepsColumnName">Input column with the steps (a variable-length vector of text, e.g. from <c>SegmentSteps</c>).</param>
    /// <param name="referenceAnswerColumnName">Input text column with the reference answer; null for none.</param>
    /// <param name="referenceSolutionColumnName">Input text column with a reference solution; null for none.</param>
    /// <param name="verifiers">Verifiers in the order they are asked; none means one <see cref="ArithmeticStepVerifier"/>.</param>
    public static FirstErrorLocatorEstimator LocateFirstError(this TransformsCatalog catalog, string problemColumnName = "Problem",
        string stepsColumnName = "Steps", string? referenceAnswerColumnName = "Answer", string? referenceSolutionColumnName = null,
        params IStepVerifier[] verifiers)
        => LocateFirstError(catalog, new FirstErrorLocatorEstimator.Options
        {
            ProblemColumnName = problemColumnName,
            StepsColumnName = stepsColumnName,
            ReferenceAnswerColumnName = referenceAnswerColumnName,
            ReferenceSolutionColumnName = referenceSolutionColumnName,
            Verifiers = verifiers is { Length: > 0 } ? verifiers.ToList() : new List<IStepVerifier> { new ArithmeticStepVerifier() },
        });

    /// <summary>Finds the first wrong step of each solution, with all options.</summary>
    public static FirstErrorLocatorEstimator LocateFirstError(this TransformsCatalog catalog, FirstErrorLocatorEstimator.Options options)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        return new FirstErrorLocatorEstimator(catalog, options);
    }
}
