using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>What the training loops need from a causal language model.</summary>
internal interface ICausalLanguageModel
{
    /// <summary>Final hidden states [B, T, H] (after the last norm). <paramref name="attentionMask"/>, when given,
    /// is a may-attend mask [B, 1, T, T] that replaces the causal mask.</summary>
    Tensor ForwardHidden(Tensor inputIds, Tensor? positionIds, Tensor? attentionMask);

    /// <summary>The LM head applied to hidden states [..., H] → logits [..., V].</summary>
    Tensor ProjectToLogits(Tensor hidden);

    /// <summary>The parameters the optimizer updates (LoRA adapters only, when adapters are on).</summary>
    IEnumerable<TorchSharp.Modules.Parameter> TrainableParameters();

    /// <summary>Switches dropout on or off.</summary>
    void SetTraining(bool training);

    /// <summary>Runs <paramref name="action"/> with the reference model: the base with adapters disabled when
    /// LoRA is on; otherwise the model as it is (the loop only calls this before the first update).</summary>
    T WithReference<T>(Func<T> action);

    /// <summary>Writes/reads the trainable state (all weights, or adapters only) for checkpoints.</summary>
    void SaveTrainableState(string path);
    void LoadTrainableState(string path);

    Device Device { get; }
}
