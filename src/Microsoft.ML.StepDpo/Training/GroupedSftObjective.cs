using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// SFT over pre-formed micro-batches (see <see cref="LengthGroupedBatches"/>): each training example is one
/// group of sequences and the loop runs with batch size 1. The loss is <see cref="SftObjective"/>'s on the group.
/// </summary>
internal sealed class GroupedSftObjective : ITrainingObjective<TokenizedSequence[]>
{
    private readonly SftObjective _inner = new();

    public (Tensor Loss, Dictionary<string, double> Metrics, int Tokens) Compute(ICausalLanguageModel model, IReadOnlyList<TokenizedSequence[]> batch, IReadOnlyList<int> indices)
    {
        var flat = batch.Count == 1 ? batch[0] : batch.SelectMany(g => g).ToArray();
        return _inner.Compute(model, flat, Array.Empty<int>());
    }
}
