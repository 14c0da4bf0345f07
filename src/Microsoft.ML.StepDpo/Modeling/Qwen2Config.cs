using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// The architecture hyperparameters of a Qwen2-family (or Llama-family) causal LM, as in Hugging Face's
/// <c>config.json</c>. Qwen2 has q/k/v biases; Llama has none unless <c>attention_bias</c> is true.
/// </summary>
internal sealed record Qwen2Config
{
    public string ModelType { get; init; } = "qwen2";
    public int VocabSize { get; init; } = 151936;
    public int HiddenSize { get; init; } = 896;
    public int IntermediateSize { get; init; } = 4864;
    public int NumHiddenLayers { get; init; } = 24;
    public int NumAttentionHeads { get; init; } = 14;
    public int NumKeyValueHeads { get; init; } = 2;
    /// <summary>Per-head width; Hugging Face derives it as hidden/heads unless <c>head_dim</c> is given.</summary>
    public int? HeadDimOverride { get; init; }
    public double RopeTheta { get; init; } = 1_000_000.0;
    public double RmsNormEps { get; init; } = 1e-6;
    public bool TieWordEmbeddings { get; init; } = true;
    public int MaxPositionEmbeddings { get; init; } = 32768;
    public string TorchDtype { get; init; } = "bfloat16";
    /// <summary>Biases on q/k/v (o_proj never has one). Qwen2: always true; Llama: <c>attention_bias</c>.</summary>
    public bool AttentionBias { get; init; } = true;
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }

    public int HeadDim => HeadDimOverride ?? HiddenSize / NumAttentionHeads;

    /// <summary>Qwen2-0.5B's shape (the default values above).</summary>
    public static Qwen2Config Qwen2_0_5B() => new();

    /// <summary>A tiny Qwen2 for tests and demos.</summary>
    public static Qwen2Config Tiny(int vocab = 64, int hidden = 32, int layers = 2, int heads = 4, int kvHeads = 2, int intermediate = 64, bool tied = true) => new()
    {
        VocabSize = vocab, HiddenSize = hidden, IntermediateSize = intermediate, NumHiddenLayers = layers,
        NumAttentionHeads = heads, NumKeyValueHeads = kvHeads, RopeTheta = 10000, TieWordEmbeddings = tied,
        MaxPositionEmbeddings = 2048, TorchDtype = "float32",
    };

    /// <summary>Checks the shape is buildable; throws with the offending field named.</summary>
    public void Validate()
    {
        if (ModelType is not ("qwen2" or "llama"))
            throw new NotSupportedException($"model_type '{ModelType}' is not supported (expected 'qwen2' or 'llama').");
        InRange(VocabSize, MaxVocabSize, "vocab_size"); InRange(HiddenSize, MaxHiddenSize, "hidden_size");
        InRange(IntermediateSize, MaxIntermediateSize, "intermediate_size"); InRange(NumHiddenLayers, MaxLayers, "num_hidden_layers");
        InRange(NumAttentionHeads, MaxHeads, "num_attention_heads"); InRange(NumKeyValueHeads, MaxHeads, "num_key_value_heads");
        if (HeadDimOverride is int hd) InRange(hd, MaxHeadDim, "head_dim");
        InRange(MaxPositionEmbeddings, MaxPositions, "max_position_embeddings");
        if (!(RmsNormEps > 0) || !double.IsFinite(RmsNormEps)) throw new ArgumentException($"rms_norm_eps must be a positive number (got {RmsNormEps}).");
        if (NumAttentionHeads % NumKeyValueHeads != 0)
            throw new ArgumentException($"num_attention_heads ({NumAttentionHeads}) must be a multiple of num_key_value_heads ({NumKeyValueHeads}).");
        if (HeadDimOverride is null && HiddenSize % NumAttentionHeads != 0)
            throw new ArgumentException($"hidden_size ({HiddenSize}) must be a multiple of num_attention_heads ({NumAttentionHeads}).");
        if (HeadDim % 2 != 0) throw new ArgumentException($"head_dim ({HeadDim}) must be even for rotary embeddings.");
        if (!(RopeTheta > 0) || !double.IsFinite(RopeTheta)) throw new ArgumentException($"rope_theta must be a positive number (got {RopeTheta}).");
    }

    // Plausible sizes: a few times the largest published models of the family, far below what would overflow.
    internal const int MaxVocabSize = 4 << 20, MaxHiddenSize = 1 << 16, MaxIntermediateSize = 1 << 19, MaxLayers = 1024,
        MaxHeads = 1024, MaxHeadDim = 1024, MaxPositions = 1 << 24;

    private static void InRange(int v, int max, string name)
    {
        if (v <= 0) throw new ArgumentException($"{name} must be positive (got {v}).");
        if (v > max) throw new ArgumentException($"{name} is {v}, more than {max}, which no supported model has.");
    }

    /// <summary>The number of weights (and biases) the model has: embedding, layers, final norm and an untied LM head.</summary>
    public long ParameterCount
    {
        get
        {
            long h = HiddenSize, q = (long)NumAttentionHeads * HeadDim, kv = (long)NumKeyValueHeads * HeadDim;
            long attention = h * q + 2 * h * kv + q * h + (AttentionBias ? q + 2 * kv : 0);
            long layer = attention + 3 * h * IntermediateSize + 2 * h;
            return (long)VocabSize * h * (TieWordEmbeddings ? 1 : 2) + NumHiddenLayers * layer + h;
        }
    }

    /// <summary>
    /// Throws when the weights this config implies, in <paramref name="dtype"/>, do not fit the memory this process may
    /// use (the machine's or the container's limit), before any tensor is allocated.
    /// </summary>
    /// <param name="dtype">The dtype the weights will have.</param>
    /// <param name="source">The config file (or what made the config), named in the message.</param>
    public void CheckFitsInMemory(ScalarType dtype, string source)
    {
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        double bytes = (double)ParameterCount * ElementSize(dtype);
        if (available > 0 && bytes > available)
            throw new InsufficientMemoryException(
                $"{source}: the model has {ParameterCount:N0} parameters, {bytes / (1 << 30):N1} GiB as {DtypeName(dtype)}, " +
                $"more than the {(double)available / (1 << 30):N1} GiB of memory available; check the config or use a machine with more memory.");
    }

    private static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float64 => 8,
        ScalarType.Float32 => 4,
        _ => 2,
    };

    /// <summary>The <see cref="ScalarType"/> named by <c>torch_dtype</c>.</summary>
    public ScalarType DType => ParseDtype(TorchDtype);

    public static ScalarType ParseDtype(string name) => name switch
    {
        "float32" or "float" => ScalarType.Float32,
        "bfloat16" => ScalarType.BFloat16,
        "float16" or "half" => ScalarType.Float16,
        "float64" or "double" => ScalarType.Float64,
        _ => throw new NotSupportedException($"torch_dtype '{name}' is not supported."),
    };

    public static string DtypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float64 => "float64",
        _ => throw new NotSupportedException($"dtype {t} is not supported for model weights."),
    };

    /// <summary>Reads a Hugging Face <c>config.json</c>.</summary>
    public static Qwen2Config Load(string path)
    {
        var root = JsonFiles.ReadObject(path);
        try
        {
            return FromJson(root);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    public static Qwen2Config FromJson(JsonObject j)
    {
        string type = j["model_type"]?.GetValue<string>() ?? throw new InvalidDataException("config.json has no 'model_type'.");
        if (j["rope_scaling"] is JsonNode rs && rs.GetValueKind() != JsonValueKind.Null)
            throw new NotSupportedException($"rope_scaling is not supported (got {rs.ToJsonString()}).");
        int Req(string k) => j[k]?.GetValue<int>() ?? throw new InvalidDataException($"config.json has no '{k}'.");
        int heads = Req("num_attention_heads");
        var c = new Qwen2Config
        {
            ModelType = type,
            VocabSize = Req("vocab_size"),
            HiddenSize = Req("hidden_size"),
            IntermediateSize = Req("intermediate_size"),
            NumHiddenLayers = Req("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = j["num_key_value_heads"]?.GetValue<int>() ?? heads,
            HeadDimOverride = j["head_dim"]?.GetValue<int>(),
            RopeTheta = j["rope_theta"]?.GetValue<double>() ?? 10000.0,
            RmsNormEps = j["rms_norm_eps"]?.GetValue<double>() ?? 1e-6,
            TieWordEmbeddings = j["tie_word_embeddings"]?.GetValue<bool>() ?? false,
            MaxPositionEmbeddings = j["max_position_embeddings"]?.GetValue<int>() ?? 32768,
            TorchDtype = j["torch_dtype"]?.GetValue<string>() ?? j["dtype"]?.GetValue<string>() ?? "float32",
            AttentionBias = type == "qwen2" || (j["attention_bias"]?.GetValue<bool>() ?? false),
            BosTokenId = IntOrFirst(j["bos_token_id"]),
            EosTokenId = IntOrFirst(j["eos_token_id"]),
        };
        if (type == "llama" && (j["mlp_bias"]?.GetValue<bool>() ?? false))
            throw new NotSupportedException("Llama configs with mlp_bias = true are not supported.");
        c.Validate();
        return c;
    }

    private static int? IntOrFirst(JsonNode? n) => n switch
    {
        null => null,
        JsonArray a => a.Count > 0 ? a[0]!.GetValue<int>() : null,
        _ => n.GetValueKind() == JsonValueKind.Null ? null : n.GetValue<int>(),
    };

    /// <summary>The <c>config.json</c> that Hugging Face transformers loads as Qwen2ForCausalLM / LlamaForCausalLM.</summary>
    public JsonObject ToJson()
    {
        bool qwen = ModelType == "qwen2";
        var j = new JsonObject
        {
            ["architectures"] = new JsonArray(qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"),
            ["model_type"] = ModelType,
            ["vocab_size"] = VocabSize,
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["hidden_act"] = "silu",
            ["rope_theta"] = RopeTheta,
            ["rms_norm_eps"] = RmsNormEps,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["torch_dtype"] = TorchDtype,
            ["attention_dropout"] = 0.0,
            ["initializer_range"] = 0.02,
            ["use_cache"] = true,
        };
        if (HeadDimOverride is int hd) j["head_dim"] = hd;
        if (qwen)
        {
            j["use_sliding_window"] = false;
            j["max_window_layers"] = NumHiddenLayers;
        }
        else
        {
            j["attention_bias"] = AttentionBias;
            j["mlp_bias"] = false;
        }
        if (BosTokenId is int b) j["bos_token_id"] = b;
        if (EosTokenId is int e) j["eos_token_id"] = e;
        return j;
    }

    public void Save(string path) =>
        File.WriteAllText(path, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
}
