namespace Microsoft.ML.StepDpo.Verification;

/// <summary>The combined verdict on one step.</summary>
/// <param name="Verdict">The deciding verifier's verdict (<see cref="StepVerdict.Unknown"/> when none decided).</param>
/// <param name="DecidedBy">Name of the verifier that decided, or null.</param>
/// <param name="Evidence">That verifier's evidence (or the last non-empty evidence seen, when none decided).</param>
internal sealed record LocatedStep(StepVerdict Verdict, string? DecidedBy, string Evidence);
