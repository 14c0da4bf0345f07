using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace StepDpo.Tools.RealCheckpoints;

/// <summary>
/// Writes a Hugging Face model folder of a real Qwen2.5 shape with random weights: config.json, generation_config.json,
/// the weights as the hub stores them (<see cref="HubWeightLayout"/>, plus model.safetensors.index.json when sharded),
/// and the real tokenizer files (<see cref="QwenTokenizerFiles"/>). Weights are initialized as transformers does for
/// Qwen2 (normal, std initializer_range, for embeddings and projections; zero biases; unit norms), each tensor from its
/// own generator seeded by (seed, tensor name), so a tensor's values do not depend on the sharding. Tensors are made and
/// written a slab at a time: memory stays at a few tens of MB whatever the model's size.
/// <para>
/// With <c>sparseLayers</c> the decoder layers' projection weights and biases are zeros left as holes of a sparse file
/// (the embeddings, the LM head and the norms are written as usual): the files have the hub's layout and sizes and load
/// into the same memory, but take far less disk (the 7B folder about 2.2 GB instead of 15.2 GB). For memory and speed
/// measurements where disk is short; such a model's layers compute nothing (each adds zero to the residual stream).
/// </para>
/// </summary>
internal static class HubCheckpointWriter
{
    /// <summary>Elements generated at once (64 MiB of fp32).</summary>
    private const long SlabElements = 16L << 20;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Writes the folder; <paramref name="maxShardBytes"/> overrides the hub's sharding (tests).</summary>
    public static void Write(HubShape shape, ScalarType dtype, int seed, string output, string tokenizerSource,
        long? maxShardBytes = null, Action<string>? log = null, bool sparseLayers = false)
    {
        if (dtype is not (ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float16))
            throw new ArgumentException($"dtype {dtype} is not a weight dtype (bf16, fp16 or fp32).", nameof(dtype));
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
            throw new IOException($"'{output}' is not empty; give a new folder.");
        TorchRuntime.EnsureLoaded();
        Directory.CreateDirectory(output);

        // transformers writes both with json.dumps(indent=2, sort_keys=True) plus a newline.
        WriteJson(Path.Combine(output, "config.json"), shape.ConfigJson(Qwen2Config.DtypeName(dtype)));
        WriteJson(Path.Combine(output, "generation_config.json"), shape.GenerationJson());
        QwenTokenizerFiles.Write(tokenizerSource, output, shape.MathTokenizer);

        var tensors = HubWeightLayout.Tensors(shape.Int("vocab_size"), shape.Int("hidden_size"), shape.Int("intermediate_size"),
            shape.Int("num_hidden_layers"), shape.Int("num_attention_heads"), shape.Int("num_key_value_heads"), shape.Bool("tie_word_embeddings"));
        int elementSize = dtype == ScalarType.Float32 ? 4 : 2;
        var shards = HubWeightLayout.Split(tensors, elementSize, maxShardBytes ?? shape.MaxShardBytes);
        double std = double.Parse(shape.Value("initializer_range"), System.Globalization.CultureInfo.InvariantCulture);
        foreach (var shard in shards)
        {
            log?.Invoke($"writing {shard.FileName} ({shard.Tensors.Sum(t => t.Elements) * elementSize / 1e9:F2} GB)");
            WriteShard(Path.Combine(output, shard.FileName), shard, dtype, seed, std, sparseLayers);
        }
        if (shards.Count > 1)
        {
            var map = new JsonObject();
            foreach (var (name, file) in shards.SelectMany(s => s.Tensors.Select(t => (t.Name, s.FileName))).OrderBy(e => e.Name, StringComparer.Ordinal))
                map[name] = file;
            var index = new JsonObject
            {
                ["metadata"] = new JsonObject { ["total_size"] = tensors.Sum(t => t.Elements) * elementSize },
                ["weight_map"] = map,
            };
            WriteJson(Path.Combine(output, HubWeightLayout.IndexFile), index);
        }
    }

    private static void WriteJson(string path, JsonNode node) =>
        File.WriteAllText(path, node.ToJsonString(Indented) + "\n", new UTF8Encoding(false));

    private static void WriteShard(string path, HubWeightLayout.Shard shard, ScalarType dtype, int seed, double std, bool sparseLayers)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        stream.Write(SafeTensors.Header(shard.Tensors.Select(t => (t.Name, dtype, t.Shape))));
        int elementSize = dtype == ScalarType.Float32 ? 4 : 2;
        foreach (var t in shard.Tensors)
        {
            if (sparseLayers && IsLayerProjection(t.Name))
                stream.Seek(t.Elements * elementSize, SeekOrigin.Current);   // a hole: reads back as zeros
            else
                WriteTensor(stream, t, dtype, seed, std);
        }
        if (stream.Length < stream.Position) stream.SetLength(stream.Position);   // the last tensors were holes
        stream.Flush(flushToDisk: true);
    }

    /// <summary>A decoder layer's projection weight or bias (not a norm): what <c>sparseLayers</c> leaves as zeros.</summary>
    internal static bool IsLayerProjection(string name) =>
        name.StartsWith("model.layers.", StringComparison.Ordinal) && !name.EndsWith("norm.weight", StringComparison.Ordinal);

    /// <summary>The tensor's values, made and written a slab of rows at a time.</summary>
    internal static void WriteTensor(Stream stream, HubWeightLayout.Tensor t, ScalarType dtype, int seed, double std)
    {
        long rows = t.Shape[0], rowElements = t.Elements / Math.Max(1, rows);
        long slabRows = Math.Max(1, SlabElements / Math.Max(1, rowElements));
        bool norm = t.Name.EndsWith("norm.weight", StringComparison.Ordinal);
        bool bias = t.Name.EndsWith(".bias", StringComparison.Ordinal);
        using var gen = new Generator((ulong)(uint)StableSeed.Mix(seed, NameHash(t.Name)));
        for (long start = 0; start < rows; start += slabRows)
        {
            long n = Math.Min(slabRows, rows - start);
            var shape = t.Shape.ToArray();
            shape[0] = n;
            using var scope = torch.NewDisposeScope();
            var values = norm ? torch.ones(shape, dtype: ScalarType.Float32)
                : bias ? torch.zeros(shape, dtype: ScalarType.Float32)
                : torch.empty(shape, dtype: ScalarType.Float32).normal_(0, std, gen);
            var stored = values.to(dtype).contiguous();
            stream.Write(stored.bytes);
        }
    }

    // FNV-1a of the name: the same in every process (string.GetHashCode is randomized per process).
    private static int NameHash(string name)
    {
        uint h = 2166136261;
        foreach (char c in name) { h ^= c; h *= 16777619; }
        return (int)h;
    }
}
