namespace Microsoft.ML.StepDpo.Verification;

/// <summary>One solution to verify, step by step, with what is known about the problem.</summary>
/// <param name="Problem">The problem text.</param>
/// <param name="Steps">The solution's steps in order (step k is <c>Steps[k - 1]</c>), without "Step k:" markers.
/// This may be a prefix of the whole solution when an earlier verifier already found an error further on.</param>
/// <param name="ReferenceAnswer">The correct final answer, when known.</param>
/// <param name="ReferenceSolution">A correct worked solution, when known (judges use it).</param>
public sealed record StepVerificationInput(
    string Problem,
    IReadOnlyList<string> Steps,
    string? ReferenceAnswer = null,
    string? ReferenceSolution = null);
