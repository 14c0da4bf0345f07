using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Loads and saves Hugging Face model folders: <c>config.json</c> plus <c>model.safetensors</c> or shards
/// listed in <c>model.safetensors.index.json</c>. Tensors stream one at a time into the model's own
/// parameters, so loading peaks at the model plus one stored tensor.
/// </summary>
internal static class ModelCheckpoint
{
    public const string ConfigFile = "config.json";
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>Loads a model; <paramref name="dtype"/> defaults to the config's <c>torch_dtype</c>.</summary>
    public static Qwen2ForCausalLM Load(string directory, ScalarType? dtype = null, Device? device = null)
    {
        var configPath = System.IO.Path.Combine(directory, ConfigFile);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"No {ConfigFile} in '{directory}'.", configPath);
        var config = Qwen2Config.Load(configPath);
        config.CheckFitsInMemory(dtype ?? config.DType, configPath);
        var model = new Qwen2ForCausalLM(config, dtype, device);
        try
        {
            LoadWeights(model, directory);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Loads the weights of a folder into an existing model (base weights only; LoRA adapters are untouched).</summary>
    public static void LoadWeights(Qwen2ForCausalLM model, string directory)
    {
        var files = WeightFiles(directory);
        var expected = model.named_parameters().Where(p => !IsAdapter(p.name)).ToDictionary(p => p.name, p => p.parameter);
        var readers = new List<SafeTensors.Reader>();
        try
        {
            foreach (var f in files) readers.Add(new SafeTensors.Reader(f));
            // Check every header before touching any parameter, and report all problems at once.
            var problems = new List<string>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var r in readers)
                foreach (var e in r.Entries.Values)
                {
                    if (!expected.TryGetValue(e.Name, out var p))
                    {
                        // Tied checkpoints sometimes carry lm_head.weight as a copy of the embedding.
                        if (!(model.Config.TieWordEmbeddings && e.Name == "lm_head.weight") && !IsIgnorableBuffer(e.Name))
                            problems.Add($"unexpected tensor '{e.Name}' in {System.IO.Path.GetFileName(r.Path)}");
                        continue;
                    }
                    if (!e.Shape.SequenceEqual(p.shape))
                        problems.Add($"tensor '{e.Name}' has shape [{string.Join(", ", e.Shape)}] in the checkpoint but [{string.Join(", ", p.shape)}] in the model");
                    if (e.DType is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float64))
                        problems.Add($"tensor '{e.Name}' is stored as {e.DType}, not a floating-point type");
                    seen.Add(e.Name);
                }
            problems.AddRange(expected.Keys.Where(n => !seen.Contains(n)).Select(n => $"missing tensor '{n}'"));
            if (problems.Count > 0)
                throw new InvalidDataException(
                    $"Checkpoint '{directory}' does not match the {model.Config.ModelType} config ({problems.Count} problem(s)): " +
                    string.Join("; ", problems.Take(20)) + (problems.Count > 20 ? "; ..." : "") + ".");
            foreach (var r in readers)
                foreach (var name in r.Entries.Keys.Where(expected.ContainsKey))
                    r.ReadInto(name, expected[name]);
        }
        finally
        {
            foreach (var r in readers) r.Dispose();
        }
    }

    /// <summary>
    /// Saves config.json and the weights (base weights; merge LoRA adapters first to include them), split into
    /// shards of at most <paramref name="maxShardBytes"/> when given, and copies <paramref name="tokenizerFiles"/>.
    /// </summary>
    public static void Save(Qwen2ForCausalLM model, string directory, long? maxShardBytes = null, IEnumerable<string>? tokenizerFiles = null)
    {
        Directory.CreateDirectory(directory);
        foreach (var stale in Directory.EnumerateFiles(directory, "model*.safetensors*")) File.Delete(stale);
        (model.Config with { TorchDtype = Qwen2Config.DtypeName(model.DType) }).Save(System.IO.Path.Combine(directory, ConfigFile));

        var tensors = model.named_parameters().Where(p => !IsAdapter(p.name)).Select(p => (p.name, (Tensor)p.parameter)).ToList();
        var shards = new List<List<(string, Tensor)>> { new() };
        long current = 0;
        foreach (var t in tensors)
        {
            long bytes = t.Item2.numel() * t.Item2.ElementSize;
            if (maxShardBytes is long max && current > 0 && current + bytes > max)
            {
                shards.Add(new());
                current = 0;
            }
            shards[^1].Add(t);
            current += bytes;
        }
        if (shards.Count == 1)
        {
            SafeTensors.Write(System.IO.Path.Combine(directory, SingleFile), shards[0]);
        }
        else
        {
            var map = new JsonObject();
            long total = 0;
            for (int i = 0; i < shards.Count; i++)
            {
                var file = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
                SafeTensors.Write(System.IO.Path.Combine(directory, file), shards[i]);
                foreach (var (name, t) in shards[i])
                {
                    map[name] = file;
                    total += t.numel() * t.ElementSize;
                }
            }
            var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = map };
            File.WriteAllText(System.IO.Path.Combine(directory, IndexFile), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        foreach (var f in tokenizerFiles ?? Enumerable.Empty<string>())
            File.Copy(f, System.IO.Path.Combine(directory, System.IO.Path.GetFileName(f)), overwrite: true);
    }

    /// <summary>The safetensors files of a folder: the shards named by the index, else model.safetensors.</summary>
    internal static IReadOnlyList<string> WeightFiles(string directory)
    {
        var index = System.IO.Path.Combine(directory, IndexFile);
        if (File.Exists(index))
        {
            var map = JsonFiles.ReadObject(index)["weight_map"] as JsonObject
                      ?? throw new InvalidDataException($"{index} has no 'weight_map'.");
            var files = map.Select(kv => kv.Value!.GetValue<string>()).Distinct().Select(f => System.IO.Path.Combine(directory, f)).ToList();
            foreach (var f in files)
                if (!File.Exists(f)) throw new FileNotFoundException($"Shard '{System.IO.Path.GetFileName(f)}' listed in {IndexFile} is missing.", f);
            return files;
        }
        var single = System.IO.Path.Combine(directory, SingleFile);
        if (File.Exists(single)) return new[] { single };
        throw new FileNotFoundException($"No {SingleFile} or {IndexFile} in '{directory}' (only safetensors checkpoints are supported).");
    }

    private static bool IsAdapter(string name) => name.Contains(".lora_A.", StringComparison.Ordinal) || name.Contains(".lora_B.", StringComparison.Ordinal);

    // Older checkpoints store the rotary table as a buffer; it is recomputed here.
    private static bool IsIgnorableBuffer(string name) => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);
}
