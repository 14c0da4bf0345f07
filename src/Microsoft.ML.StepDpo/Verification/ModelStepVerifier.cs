using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Verification;

/// <summary>
/// A trained Step-DPO step scorer as a verifier: a step whose implicit reward β·(log πθ − log πref) falls
/// below the threshold is <see cref="StepVerdict.Incorrect"/>; other steps are left
/// <see cref="StepVerdict.Unknown"/> (a positive reward does not vouch for a step), so later verifiers decide.
/// </summary>
public sealed class ModelStepVerifier : IStepVerifier
{
    private readonly StepScorer _scorer;

    /// <summary>Wraps a fitted (or loaded-and-fitted) <see cref="StepScoringTransformer"/>.</summary>
    /// <param name="scorer">The step scorer returned by the Step-DPO trainer.</param>
    /// <param name="threshold">Reward below which a step is called wrong; null uses the scorer's own threshold.</param>
    public ModelStepVerifier(StepScoringTransformer scorer, double? threshold = null)
    {
        ArgumentNullException.ThrowIfNull(scorer);
        _scorer = scorer.Scorer;
        Threshold = threshold ?? _scorer.Threshold;
    }

    /// <summary>Reward below which a step is called wrong.</summary>
    public double Threshold { get; }

    /// <inheritdoc/>
    public string Name => "model";

    /// <inheritdoc/>
    public Task<IReadOnlyList<StepCheck>> VerifyAsync(StepVerificationInput input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        cancellationToken.ThrowIfCancellationRequested();
        var checks = new StepCheck[input.Steps.Count];
        var scores = _scorer.Score(input.Problem ?? "", SolutionText.Full(input.Steps));
        for (int k = 0; k < checks.Length; k++)
        {
            if (k >= scores.Rewards.Length)
            {
                checks[k] = new StepCheck(StepVerdict.Unknown, "not scored");
                continue;
            }
            float r = scores.Rewards[k];
            checks[k] = float.IsNaN(r) ? new StepCheck(StepVerdict.Unknown, "beyond the model's context")
                : r < Threshold
                ? new StepCheck(StepVerdict.Incorrect, $"step reward {r:F3} below {Threshold:F3}")
                : new StepCheck(StepVerdict.Unknown, $"step reward {r:F3}");
        }
        return Task.FromResult<IReadOnlyList<StepCheck>>(checks);
    }
}
