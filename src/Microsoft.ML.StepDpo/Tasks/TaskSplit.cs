namespace Microsoft.ML.StepDpo.Tasks;

/// <summary>Which side of the fixed train / held-out partition a generated problem comes from.</summary>
public enum TaskSplit
{
    /// <summary>Problems used for training (SFT, preference data).</summary>
    Train,

    /// <summary>Problems reserved for evaluation; never produced for <see cref="Train"/>, whatever the seed.</summary>
    HeldOut,
}
