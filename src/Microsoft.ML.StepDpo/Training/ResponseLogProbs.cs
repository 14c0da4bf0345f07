using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>Summed response log-probabilities of a <see cref="PreferenceBatch"/>, and TRL's logits metrics.</summary>
internal static class ResponseLogProbs
{
    /// <summary>
    /// Gathers the labelled positions of <paramref name="features"/> [R, T, F], projects them to logits with
    /// <paramref name="toLogits"/> (identity when <paramref name="features"/> already are logits; the LM head
    /// when they are hidden states, so logits are only computed where a label needs them), and sums
    /// log π(target) per pair and side.
    /// </summary>
    public static (PairLogProbs LogProbs, Tensor MeanLogitsChosen, Tensor MeanLogitsRejected) Compute(
        Tensor features, PreferenceBatch batch, Func<Tensor, Tensor>? toLogits = null)
    {
        var labels = batch.Labels;
        int t = (int)features.shape[1];
        var device = features.device;
        var flatIndex = new long[labels.Length];
        var targets = new long[labels.Length];
        var slot = new long[labels.Length]; // pair + side·B
        for (int n = 0; n < labels.Length; n++)
        {
            flatIndex[n] = (long)labels[n].Row * t + labels[n].Position;
            targets[n] = labels[n].Target;
            slot[n] = labels[n].Pair + labels[n].Side * batch.Pairs;
        }
        var flat = features.reshape(-1, features.shape[2]);
        var picked = flat.index(new[] { torch.tensor(flatIndex, device: device) });   // = index_select(0, ·), which meta lacks
        var logits = toLogits is null ? picked : toLogits(picked);
        // Log-softmax in at least fp32 (bf16 logits lose too much in the sum over a step).
        var dtype = logits.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var logp = logits.to(dtype).log_softmax(-1)
            .gather(1, torch.tensor(targets, device: device).unsqueeze(1)).squeeze(1);

        var slotT = torch.tensor(slot, device: device);
        // scatter_add = index_add for 1-D sums; its backward is a gather, which (unlike index_add's index_select) also runs
        // on the meta device the device-placement tests use.
        var sums = torch.zeros(2 * batch.Pairs, dtype: dtype, device: device).scatter_add(0, slotT, logp);
        var counts = torch.zeros(2 * batch.Pairs, dtype: dtype, device: device)
            .scatter_add(0, slotT, torch.ones(labels.Length, dtype: dtype, device: device));

        int b = batch.Pairs;
        var lp = new PairLogProbs(sums[..b], sums[b..], counts[..b], counts[b..]);

        using var noGrad = torch.no_grad();
        var meanLogit = logits.detach().to(dtype).mean(new long[] { 1 });
        var sideT = torch.tensor(labels.Select(l => (long)l.Side).ToArray(), device: device);
        var chosenMask = sideT.eq(Num(0)).to(dtype);
        var meanChosen = (meanLogit * chosenMask).sum() / chosenMask.sum().clamp_min(Num(1));
        var rejectedMask = Minus(Num(1), chosenMask);
        var meanRejected = (meanLogit * rejectedMask).sum() / rejectedMask.sum().clamp_min(Num(1));
        return (lp, meanChosen, meanRejected);
    }
}
