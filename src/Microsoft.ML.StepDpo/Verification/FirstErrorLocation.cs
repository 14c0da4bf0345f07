namespace Microsoft.ML.StepDpo.Verification;

/// <summary>Where the first error of a solution is, and the verdict on every step.</summary>
/// <param name="FirstErrorStep">1-based number of the first erroneous step; -1 when no error was found.</param>
/// <param name="Steps">One combined verdict per step.</param>
/// <param name="Evidence">A short text for the first error ("step 3 [arithmetic]: 12+54=68, but 12+54 is 66"), or empty.</param>
internal sealed record FirstErrorLocation(int FirstErrorStep, IReadOnlyList<LocatedStep> Steps, string Evidence)
{
    public const int NoError = -1;
}
