namespace Microsoft.ML.StepDpo.Verification;

/// <summary>
/// Checks the steps of one solution. Implementations: <see cref="ArithmeticStepVerifier"/> (exact
/// arithmetic from the text); rollout, judge and model verifiers plug in the same way.
/// </summary>
/// <remarks>
/// Contract: return exactly one <see cref="StepCheck"/> per input step, in order. Say
/// <see cref="StepVerdict.Unknown"/> for steps you cannot judge, so that the next verifier decides;
/// return <see cref="StepVerdict.Correct"/> only when you vouch for the whole step (a step whose
/// arithmetic is right can still be wrong). A verifier may stop judging after the first step it finds
/// <see cref="StepVerdict.Incorrect"/> and leave the rest <see cref="StepVerdict.Unknown"/>.
/// Failures of a remote service should become <see cref="StepVerdict.Unknown"/>, not exceptions.
/// </remarks>
public interface IStepVerifier
{
    /// <summary>Short name used in evidence texts and options (e.g. "arithmetic").</summary>
    string Name { get; }

    /// <summary>Verdicts for the steps of <paramref name="input"/>, one per step.</summary>
    Task<IReadOnlyList<StepCheck>> VerifyAsync(StepVerificationInput input, CancellationToken cancellationToken = default);
}
