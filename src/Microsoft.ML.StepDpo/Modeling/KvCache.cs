using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Preallocated per-layer key/value cache [B, kv_heads, capacity, head_dim] for inference. Slots are
/// batch-aligned (slot j holds the j-th token of every row); rows with shorter prompts are left-padded
/// and their padding masked out, while their rotary positions stay their own.
/// </summary>
internal sealed class KvCache : IKvCache, IDisposable
{
    private readonly Tensor[] keys, values;

    public KvCache(Qwen2Config config, long batch, long capacity, ScalarType dtype, Device device)
    {
        Capacity = capacity;
        keys = new Tensor[config.NumHiddenLayers];
        values = new Tensor[config.NumHiddenLayers];
        for (int i = 0; i < keys.Length; i++)
        {
            // Long-lived: not owned by whatever DisposeScope is current.
            keys[i] = torch.zeros(new[] { batch, config.NumKeyValueHeads, capacity, config.HeadDim }, dtype: dtype, device: device).DetachFromDisposeScope();
            values[i] = torch.zeros(new[] { batch, config.NumKeyValueHeads, capacity, config.HeadDim }, dtype: dtype, device: device).DetachFromDisposeScope();
        }
    }

    public long Capacity { get; }

    /// <summary>Writes k/v [B,kv,T,d] at slots offset..offset+T and returns views of slots 0..offset+T.</summary>
    public (Tensor K, Tensor V) Append(int layer, Tensor k, Tensor v, long offset)
    {
        long t = k.shape[2];
        if (offset + t > Capacity)
            throw new InvalidOperationException($"KV cache overflow: {offset + t} positions needed, capacity {Capacity}.");
        using (torch.no_grad())
        {
            keys[layer].narrow(2, offset, t).copy_(k);
            values[layer].narrow(2, offset, t).copy_(v);
        }
        return (keys[layer].narrow(2, 0, offset + t), values[layer].narrow(2, 0, offset + t));
    }

    public void Dispose()
    {
        foreach (var t in keys) t.Dispose();
        foreach (var t in values) t.Dispose();
    }
}
