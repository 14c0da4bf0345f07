using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>Summed log-probabilities of the chosen and rejected responses of a batch of pairs.</summary>
/// <param name="Chosen">[B] Σ log π(chosen token | context) over the response tokens.</param>
/// <param name="Rejected">[B] same for the rejected response.</param>
/// <param name="ChosenTokens">[B] number of labelled chosen tokens (for IPO's length average).</param>
/// <param name="RejectedTokens">[B] number of labelled rejected tokens.</param>
internal sealed record PairLogProbs(Tensor Chosen, Tensor Rejected, Tensor ChosenTokens, Tensor RejectedTokens);

/// <summary>Per-batch outputs of the preference loss, with TRL's reward metrics.</summary>
internal sealed record PreferenceLossResult(Tensor Loss, Tensor ChosenRewards, Tensor RejectedRewards);

/// <summary>
/// The Step-DPO loss, written as the paper's equation:
/// L = −log σ( β·[ (log πθ(s_win|x,s&lt;k) − log πref(s_win|x,s&lt;k)) − (log πθ(s_lose|x,s&lt;k) − log πref(s_lose|x,s&lt;k)) ] ),
/// and the rest of TRL's family (DPOTrainer's loss_type: sigmoid, hinge, ipo, robust; huggingface.co/docs/trl/dpo_trainer). Log-probs are sums over the step's tokens.
/// </summary>
internal static class PreferenceLoss
{
    /// <summary>Mean loss over the batch and the (detached) implicit rewards β·(log πθ − log πref).</summary>
    public static PreferenceLossResult Compute(PairLogProbs policy, PairLogProbs reference, double beta,
        PreferenceLossKind kind = PreferenceLossKind.Sigmoid, double labelSmoothing = 0)
    {
        if (beta <= 0) throw new ArgumentOutOfRangeException(nameof(beta), beta, "β must be positive.");
        if (labelSmoothing < 0 || labelSmoothing >= 0.5)
            throw new ArgumentOutOfRangeException(nameof(labelSmoothing), labelSmoothing, "Label smoothing must be in [0, 0.5).");

        var chosenLogRatio = policy.Chosen - reference.Chosen;
        var rejectedLogRatio = policy.Rejected - reference.Rejected;

        Tensor losses;
        switch (kind)
        {
            case PreferenceLossKind.Sigmoid:
            {
                var delta = Num(beta) * (chosenLogRatio - rejectedLogRatio);
                losses = Num(-(1 - labelSmoothing)) * nn.functional.logsigmoid(delta) - Num(labelSmoothing) * nn.functional.logsigmoid(-delta);
                break;
            }
            case PreferenceLossKind.Robust:
            {
                var delta = Num(beta) * (chosenLogRatio - rejectedLogRatio);
                losses = (Num(1 - labelSmoothing) * -nn.functional.logsigmoid(delta)).Plus(Num(labelSmoothing) * nn.functional.logsigmoid(-delta))
                         / Num(1 - 2 * labelSmoothing);
                break;
            }
            case PreferenceLossKind.Hinge:
            {
                var delta = Num(beta) * (chosenLogRatio - rejectedLogRatio);
                losses = nn.functional.relu(Minus(Num(1), delta));
                break;
            }
            case PreferenceLossKind.Ipo:
            {
                // IPO compares length-averaged log-ratios.
                var avgChosen = chosenLogRatio / policy.ChosenTokens.clamp_min(Num(1));
                var avgRejected = rejectedLogRatio / policy.RejectedTokens.clamp_min(Num(1));
                losses = (avgChosen - avgRejected - Num(1 / (2 * beta))).pow(Num(2));
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown loss.");
        }

        return new PreferenceLossResult(losses.mean(), (Num(beta) * chosenLogRatio).detach(), (Num(beta) * rejectedLogRatio).detach());
    }
}
