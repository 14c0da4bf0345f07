namespace Microsoft.ML.StepDpo.Verification.Arithmetic;

/// <summary>One calculation found in a step and whether its stated result holds.</summary>
/// <param name="Text">The calculation as read, e.g. "12+54=68".</param>
/// <param name="Holds">Whether the stated result matches (within the rounding the text shows).</param>
/// <param name="Explanation">For a wrong one, what it should be, e.g. "12+54 is 66".</param>
internal sealed record CheckedCalculation(string Text, bool Holds, string Explanation);
