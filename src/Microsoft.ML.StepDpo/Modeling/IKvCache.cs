using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Where attention keeps the keys and values of earlier positions during inference: <see cref="KvCache"/> (every row
/// writes at the same slot) or <see cref="SlotKvCache"/> (each row at its own slot, for continuous batching).
/// </summary>
internal interface IKvCache
{
    /// <summary>
    /// Stores this step's k/v [B,kv,T,d] of layer <paramref name="layer"/> (at slot <paramref name="offset"/> where the
    /// cache uses one) and returns the keys and values [B,kv,S,d] that the step's queries attend over.
    /// </summary>
    (Tensor K, Tensor V) Append(int layer, Tensor k, Tensor v, long offset);

    /// <summary>
    /// The attention output [B, heads, 1, d] of this step's queries q [B, heads, 1, d] over layer
    /// <paramref name="layer"/>'s keys and values (after <see cref="Append"/>), when the cache computes it itself;
    /// null to leave it to SDPA over what <see cref="Append"/> returned.
    /// </summary>
    Tensor? Attend(int layer, Tensor q) => null;
}
