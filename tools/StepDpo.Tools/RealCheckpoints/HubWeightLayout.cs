namespace StepDpo.Tools.RealCheckpoints;

/// <summary>
/// Which tensors a Qwen2ForCausalLM checkpoint holds and how transformers' <c>save_pretrained</c> splits them into
/// shards: tensors in state-dict order (embedding; per layer self_attn q/k/v/o, mlp gate/up/down, the two norms; final
/// norm; lm_head unless tied), a new shard whenever the next tensor would push the current one past
/// <c>max_shard_size</c>; shards named <c>model-0000k-of-0000n.safetensors</c>, or one <c>model.safetensors</c>.
/// Inside a file safetensors orders tensors by name.
/// </summary>
internal static class HubWeightLayout
{
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>One stored tensor.</summary>
    public sealed record Tensor(string Name, long[] Shape)
    {
        public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
    }

    /// <summary>One file of the checkpoint and the tensors it holds, sorted by name.</summary>
    public sealed record Shard(string FileName, IReadOnlyList<Tensor> Tensors);

    /// <summary>The stored tensors of a Qwen2 shape, in state-dict order.</summary>
    public static IReadOnlyList<Tensor> Tensors(int vocab, int hidden, int intermediate, int layers, int heads, int kvHeads, bool tied)
    {
        long h = hidden, kv = (long)kvHeads * (hidden / heads);
        var list = new List<Tensor> { new("model.embed_tokens.weight", new[] { vocab, h }) };
        for (int i = 0; i < layers; i++)
        {
            string p = $"model.layers.{i}.";
            list.Add(new(p + "self_attn.q_proj.weight", new[] { h, h }));
            list.Add(new(p + "self_attn.q_proj.bias", new[] { h }));
            list.Add(new(p + "self_attn.k_proj.weight", new[] { kv, h }));
            list.Add(new(p + "self_attn.k_proj.bias", new[] { kv }));
            list.Add(new(p + "self_attn.v_proj.weight", new[] { kv, h }));
            list.Add(new(p + "self_attn.v_proj.bias", new[] { kv }));
            list.Add(new(p + "self_attn.o_proj.weight", new[] { h, h }));
            list.Add(new(p + "mlp.gate_proj.weight", new[] { (long)intermediate, h }));
            list.Add(new(p + "mlp.up_proj.weight", new[] { (long)intermediate, h }));
            list.Add(new(p + "mlp.down_proj.weight", new[] { h, intermediate }));
            list.Add(new(p + "input_layernorm.weight", new[] { h }));
            list.Add(new(p + "post_attention_layernorm.weight", new[] { h }));
        }
        list.Add(new("model.norm.weight", new[] { h }));
        if (!tied) list.Add(new("lm_head.weight", new[] { vocab, h }));
        return list;
    }

    /// <summary>The files: greedy split at <paramref name="maxShardBytes"/> (null: one file), names sorted inside each.</summary>
    public static IReadOnlyList<Shard> Split(IReadOnlyList<Tensor> tensors, int elementSize, long? maxShardBytes)
    {
        var groups = new List<List<Tensor>> { new() };
        long current = 0;
        foreach (var t in tensors)
        {
            long bytes = t.Elements * elementSize;
            if (maxShardBytes is long max && current > 0 && current + bytes > max)
            {
                groups.Add(new());
                current = 0;
            }
            groups[^1].Add(t);
            current += bytes;
        }
        return groups.Select((g, i) => new Shard(
                groups.Count == 1 ? SingleFile : $"model-{i + 1:D5}-of-{groups.Count:D5}.safetensors",
                g.OrderBy(t => t.Name, StringComparer.Ordinal).ToList()))
            .ToList();
    }
}
