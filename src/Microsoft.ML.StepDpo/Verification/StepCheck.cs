namespace Microsoft.ML.StepDpo.Verification;

/// <summary>One verifier's verdict on one step, with a short human-readable reason.</summary>
/// <param name="Verdict">The verdict.</param>
/// <param name="Evidence">Why, in a few words (e.g. "12+54=68, but 12+54 is 66"); empty when there is nothing to say.</param>
public sealed record StepCheck(StepVerdict Verdict, string Evidence)
{
    /// <summary>A check that says nothing about the step.</summary>
    public static StepCheck Unknown { get; } = new(StepVerdict.Unknown, string.Empty);
}
