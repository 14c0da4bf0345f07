using System.Text.Json.Nodes;

namespace StepDpo.Tools.RealCheckpoints;

/// <summary>
/// One published Qwen2.5 model as the Hugging Face hub lays it out: its <c>config.json</c> (keys and values as the hub
/// file writes them), <c>generation_config.json</c>, how its weights are sharded and which tokenizer family it has.
/// </summary>
/// <param name="Name">The command's name for it (e.g. "qwen2.5-0.5b").</param>
/// <param name="Repository">The hub repository it copies (e.g. "Qwen/Qwen2.5-0.5B").</param>
/// <param name="Config">config.json's entries as JSON literals exactly as the hub file writes them ("1e-06", "1000000.0"),
/// except torch_dtype, which follows the dtype asked for.</param>
/// <param name="Generation">generation_config.json's entries, as JSON literals.</param>
/// <param name="MaxShardBytes">The largest shard the hub's upload used (transformers' <c>max_shard_size</c>), or null
/// when the hub has one <c>model.safetensors</c>.</param>
/// <param name="MathTokenizer">Qwen2.5-Math's tokenizer_config.json (its chat template) instead of Qwen2.5's.</param>
internal sealed record HubShape(string Name, string Repository, IReadOnlyList<KeyValuePair<string, string>> Config,
    IReadOnlyList<KeyValuePair<string, string>> Generation, long? MaxShardBytes, bool MathTokenizer)
{
    /// <summary>An integer entry of the config (e.g. "hidden_size").</summary>
    public int Int(string key) => int.Parse(Value(key), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A boolean entry of the config (e.g. "tie_word_embeddings").</summary>
    public bool Bool(string key) => Value(key) == "true";

    /// <summary>The JSON literal of a config entry.</summary>
    public string Value(string key) =>
        Config.FirstOrDefault(kv => kv.Key == key).Value ?? throw new KeyNotFoundException($"{Name}: config.json has no '{key}'.");

    /// <summary>config.json for weights stored as <paramref name="torchDtype"/>, keys sorted as transformers writes them.</summary>
    public JsonObject ConfigJson(string torchDtype) => Sorted(Config.Select(kv => kv.Key == "torch_dtype" ? new(kv.Key, $"\"{torchDtype}\"") : kv));

    /// <summary>generation_config.json, keys sorted.</summary>
    public JsonObject GenerationJson() => Sorted(Generation);

    // JsonNode.Parse keeps a number's text ("1e-06" stays "1e-06" when written back).
    private static JsonObject Sorted(IEnumerable<KeyValuePair<string, string>> entries)
    {
        var o = new JsonObject();
        foreach (var (k, v) in entries.OrderBy(kv => kv.Key, StringComparer.Ordinal)) o[k] = JsonNode.Parse(v);
        return o;
    }

    // generation_config.json of the Qwen2.5 base models (huggingface.co/Qwen/Qwen2.5-0.5B and its fine-tunes, e.g.
    // artificialguybr/Qwen2.5-0.5B-OpenHermes2.5): greedy, EOS <|endoftext|>, 2048 new tokens.
    // Declared before Known: static fields initialize in order.
    private static readonly IReadOnlyList<KeyValuePair<string, string>> BaseGeneration = Entries(
        ("bos_token_id", "151643"), ("do_sample", "false"), ("eos_token_id", "151643"), ("max_new_tokens", "2048"), ("transformers_version", "\"4.37.0\""));

    /// <summary>The shapes the <c>create-checkpoint</c> command knows.</summary>
    public static IReadOnlyList<HubShape> Known { get; } = new[]
    {
        // huggingface.co/Qwen/Qwen2.5-0.5B: config.json as mirrored by osllmai-community/Qwen2.5-0.5B (its
        // _name_or_path is Qwen/Qwen2.5-0.5B; the mirror adds pad_token_id/unsloth_fixed, left out here, and newer
        // transformers wrote sliding_window null where the original has 32768 = max_position_embeddings, as in
        // Qwen2-0.5B-Instruct's). One model.safetensors of 988,097,824 bytes (its X-Linked-Size on the hub), which the
        // writer reproduces to the byte (tied: no lm_head.weight stored).
        new HubShape("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B", Entries(
            ("architectures", "[\"Qwen2ForCausalLM\"]"), ("attention_dropout", "0.0"), ("bos_token_id", "151643"), ("eos_token_id", "151643"),
            ("hidden_act", "\"silu\""), ("hidden_size", "896"), ("initializer_range", "0.02"), ("intermediate_size", "4864"),
            ("max_position_embeddings", "32768"), ("max_window_layers", "24"), ("model_type", "\"qwen2\""), ("num_attention_heads", "14"),
            ("num_hidden_layers", "24"), ("num_key_value_heads", "2"), ("rms_norm_eps", "1e-06"), ("rope_theta", "1000000.0"),
            ("sliding_window", "32768"), ("tie_word_embeddings", "true"), ("torch_dtype", "\"bfloat16\""), ("transformers_version", "\"4.40.1\""),
            ("use_cache", "true"), ("use_mrope", "false"), ("use_sliding_window", "false"), ("vocab_size", "151936")),
            BaseGeneration, MaxShardBytes: null, MathTokenizer: false),
        // huggingface.co/Qwen/Qwen2.5-1.5B: config.json as in a copy whose _name_or_path is the local qwen2.5-1.5b
        // (GramTrans/GramTrans_DSL_LR1: max_position_embeddings 131072, max_window_layers 28, sliding_window 131072,
        // rope_theta 1e6; Qwen2.5-1.5B-Instruct differs: 32768 / 21). One model.safetensors (3.09 GB on the hub).
        new HubShape("qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B", Entries(
            ("architectures", "[\"Qwen2ForCausalLM\"]"), ("attention_dropout", "0.0"), ("bos_token_id", "151643"), ("eos_token_id", "151643"),
            ("hidden_act", "\"silu\""), ("hidden_size", "1536"), ("initializer_range", "0.02"), ("intermediate_size", "8960"),
            ("max_position_embeddings", "131072"), ("max_window_layers", "28"), ("model_type", "\"qwen2\""), ("num_attention_heads", "12"),
            ("num_hidden_layers", "28"), ("num_key_value_heads", "2"), ("rms_norm_eps", "1e-06"), ("rope_theta", "1000000.0"),
            ("sliding_window", "131072"), ("tie_word_embeddings", "true"), ("torch_dtype", "\"bfloat16\""), ("transformers_version", "\"4.40.1\""),
            ("use_cache", "true"), ("use_mrope", "false"), ("use_sliding_window", "false"), ("vocab_size", "151936")),
            BaseGeneration, MaxShardBytes: null, MathTokenizer: false),
        // huggingface.co/Qwen/Qwen2.5-Math-1.5B: config.json as converted by mlx-community/Qwen2.5-Math-1.5B-bf16
        // (max_position_embeddings 4096, max_window_layers 21, rope_theta 10000, sliding_window 4096, tied; the same
        // values in unsloth/Qwen2.5-Math-1.5B, whose newer transformers wrote sliding_window null). One model.safetensors
        // (3.09 GB, unsloth/Qwen2.5-Math-1.5B's file list).
        new HubShape("qwen2.5-math-1.5b", "Qwen/Qwen2.5-Math-1.5B", Entries(
            ("architectures", "[\"Qwen2ForCausalLM\"]"), ("attention_dropout", "0.0"), ("bos_token_id", "151643"), ("eos_token_id", "151643"),
            ("hidden_act", "\"silu\""), ("hidden_size", "1536"), ("initializer_range", "0.02"), ("intermediate_size", "8960"),
            ("max_position_embeddings", "4096"), ("max_window_layers", "21"), ("model_type", "\"qwen2\""), ("num_attention_heads", "12"),
            ("num_hidden_layers", "28"), ("num_key_value_heads", "2"), ("rms_norm_eps", "1e-06"), ("rope_theta", "10000"),
            ("sliding_window", "4096"), ("tie_word_embeddings", "true"), ("torch_dtype", "\"bfloat16\""), ("transformers_version", "\"4.37.0\""),
            ("use_cache", "true"), ("use_mrope", "false"), ("use_sliding_window", "false"), ("vocab_size", "151936")),
            BaseGeneration, MaxShardBytes: null, MathTokenizer: true),
        // huggingface.co/Qwen/Qwen2.5-Math-7B: config.json as in unsloth/Qwen2.5-Math-7B (_name_or_path Qwen/Qwen2.5-Math-7B)
        // and in fine-tunes of it (zhimeng/Qwen-2.5-7B-Simple-RL: sliding_window 4096, rope_theta 10000 written as an
        // integer): hidden 3584, intermediate 18944, 28 layers, 28 heads, 4 KV heads, vocab 152064, untied.
        // Four shards: transformers' greedy split at max_shard_size 4 GB (4,000,000,000 bytes) in state-dict order gives
        // 3.95 / 3.86 / 3.86 / 3.56 GB, the sizes of Qwen's own 7B shards (e.g. Qwen2.5-Math-7B-Instruct, mirrored by
        // unsloth), and metadata.total_size 15,231,233,024 (Qwen2.5-7B's index).
        new HubShape("qwen2.5-math-7b", "Qwen/Qwen2.5-Math-7B", Entries(
            ("architectures", "[\"Qwen2ForCausalLM\"]"), ("attention_dropout", "0.0"), ("bos_token_id", "151643"), ("eos_token_id", "151643"),
            ("hidden_act", "\"silu\""), ("hidden_size", "3584"), ("initializer_range", "0.02"), ("intermediate_size", "18944"),
            ("max_position_embeddings", "4096"), ("max_window_layers", "28"), ("model_type", "\"qwen2\""), ("num_attention_heads", "28"),
            ("num_hidden_layers", "28"), ("num_key_value_heads", "4"), ("rms_norm_eps", "1e-06"), ("rope_theta", "10000"),
            ("sliding_window", "4096"), ("tie_word_embeddings", "false"), ("torch_dtype", "\"bfloat16\""), ("transformers_version", "\"4.37.0\""),
            ("use_cache", "true"), ("use_mrope", "false"), ("use_sliding_window", "false"), ("vocab_size", "152064")),
            BaseGeneration, MaxShardBytes: 4_000_000_000, MathTokenizer: true),
    };

    /// <summary>The shape named <paramref name="name"/> (case-insensitive).</summary>
    public static HubShape Find(string name) =>
        Known.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown shape '{name}'; known: {string.Join(", ", Known.Select(s => s.Name))}.");

    private static IReadOnlyList<KeyValuePair<string, string>> Entries(params (string Key, string Json)[] entries) =>
        entries.Select(e => new KeyValuePair<string, string>(e.Key, e.Json)).ToList();
}
