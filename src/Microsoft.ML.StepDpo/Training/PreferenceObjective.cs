using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// DPO and Step-DPO (the same loss; Step-DPO's pairs are single steps after a shared correct prefix).
/// Log-probs of the reference model πref come from a precomputed cache, a separate frozen model, or the model itself
/// with its LoRA adapters disabled.
/// </summary>
internal sealed class PreferenceObjective : ITrainingObjective<TokenizedPair>
{
    public required double Beta { get; init; }
    public PreferenceLossKind Loss { get; init; } = PreferenceLossKind.Sigmoid;
    public double LabelSmoothing { get; init; }
    /// <summary>RPO: weight of the NLL of the chosen response added to the loss (0 = off).</summary>
    public double NllWeight { get; init; }
    public bool PrefixSharing { get; init; } = true;
    /// <summary>Precomputed log-probs of the reference model πref, indexed like the training set.</summary>
    public ReferenceLogProbs? Cache { get; init; }
    /// <summary>A separate frozen reference model (the plain path); used when <see cref="Cache"/> is null.</summary>
    public ICausalLanguageModel? ReferenceModel { get; init; }

    public (Tensor Loss, Dictionary<string, double> Metrics, int Tokens) Compute(ICausalLanguageModel model, IReadOnlyList<TokenizedPair> batch, IReadOnlyList<int> indices)
    {
        var layout = PrefixSharing ? PreferenceBatch.BuildPrefixShared(batch) : PreferenceBatch.BuildConcatenated(batch);
        var (ids, pos, mask) = layout.ToTensors(model.Device);
        var hidden = model.ForwardHidden(ids, pos, mask);
        var (policy, logitsChosen, logitsRejected) = ResponseLogProbs.Compute(hidden, layout, model.ProjectToLogits);

        Tensor refChosen, refRejected;
        if (Cache is not null)
            (refChosen, refRejected) = Cache.Select(indices, policy.Chosen.dtype, model.Device);
        else
        {
            var (c, r) = ReferenceModel is not null
                ? ReferenceLogProbs.Forward(ReferenceModel, batch, PrefixSharing, reference: false)
                : ReferenceLogProbs.Forward(model, batch, PrefixSharing, reference: true);
            refChosen = torch.tensor(c, dtype: ScalarType.Float64, device: model.Device).to(policy.Chosen.dtype);
            refRejected = torch.tensor(r, dtype: ScalarType.Float64, device: model.Device).to(policy.Chosen.dtype);
        }
        var reference = new PairLogProbs(refChosen, refRejected, policy.ChosenTokens, policy.RejectedTokens);
        var result = PreferenceLoss.Compute(policy, reference, Beta, Loss, LabelSmoothing);
        var loss = result.Loss;
        if (NllWeight > 0)
            loss = loss.Plus(Num(NllWeight) * -(policy.Chosen.sum() / policy.ChosenTokens.sum()));

        var metrics = new Dictionary<string, double>
        {
            ["loss"] = loss.detach().to(ScalarType.Float64).item<double>(),
            ["rewards/chosen"] = Mean(result.ChosenRewards),
            ["rewards/rejected"] = Mean(result.RejectedRewards),
            ["rewards/margins"] = Mean(result.ChosenRewards - result.RejectedRewards),
            ["rewards/accuracies"] = Mean(result.ChosenRewards.gt(result.RejectedRewards).to(ScalarType.Float32)),
            ["logps/chosen"] = Mean(policy.Chosen.detach()),
            ["logps/rejected"] = Mean(policy.Rejected.detach()),
            ["logits/chosen"] = logitsChosen.to(ScalarType.Float64).item<double>(),
            ["logits/rejected"] = logitsRejected.to(ScalarType.Float64).item<double>(),
        };
        return (loss, metrics, layout.InputTokens);
    }

    private static double Mean(Tensor t) => t.to(ScalarType.Float64).mean().item<double>();
}
