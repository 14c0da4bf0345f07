using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>The loss of one micro-batch: SFT's NLL, DPO's and Step-DPO's preference loss.</summary>
internal interface ITrainingObjective<TExample>
{
    /// <summary>Loss (a scalar with a graph) and detached metrics for <paramref name="batch"/>; <paramref name="indices"/>
    /// are the examples' positions in the training set (for cached per-example data such as the reference model's log-probs).</summary>
    (Tensor Loss, Dictionary<string, double> Metrics, int Tokens) Compute(ICausalLanguageModel model, IReadOnlyList<TExample> batch, IReadOnlyList<int> indices);
}
