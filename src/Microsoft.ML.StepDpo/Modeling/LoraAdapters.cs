using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>LoRA settings, with PEFT's names in <c>adapter_config.json</c>.</summary>
internal sealed record LoraOptions
{
    /// <summary>Adapter rank r. Default 8.</summary>
    public int Rank { get; init; } = 8;
    /// <summary>Scale numerator: the update is (alpha / r)·B·A. Default 16.</summary>
    public double Alpha { get; init; } = 16;
    /// <summary>Dropout on the adapter's input during training. Default 0.05.</summary>
    public double Dropout { get; init; } = 0.05;
    /// <summary>Projection names to adapt. Default: all seven (q, k, v, o, gate, up, down).</summary>
    public IReadOnlyList<string> TargetModules { get; init; } = AllProjections;

    public static readonly IReadOnlyList<string> AllProjections = new[] { "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj" };
}

/// <summary>
/// Attaches, toggles, merges, saves and loads LoRA adapters on a <see cref="Qwen2ForCausalLM"/>. The base is
/// frozen; with adapters disabled the model computes exactly the base model (the reference model πref of Step-DPO, for free).
/// Files use the PEFT layout: <c>adapter_config.json</c> + <c>adapter_model.safetensors</c>.
/// </summary>
internal static class LoraAdapters
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";
    private const string PeftPrefix = "base_model.model.";

    /// <summary>Freezes every base parameter and adds adapters to the targeted projections.</summary>
    public static void Apply(Qwen2ForCausalLM model, LoraOptions options)
    {
        var unknown = options.TargetModules.Except(LoraOptions.AllProjections).ToList();
        if (unknown.Count > 0) throw new ArgumentException($"Unknown LoRA target module(s): {string.Join(", ", unknown)}. Known: {string.Join(", ", LoraOptions.AllProjections)}.");
        foreach (var p in model.parameters()) p.requires_grad = false;
        foreach (var (_, lin) in Targets(model, options.TargetModules))
            lin.AddAdapter(options.Rank, options.Alpha, options.Dropout);
    }

    public static bool HasAdapters(Qwen2ForCausalLM model) => model.Projections().Any(p => p.Linear.HasAdapter);

    /// <summary>The adapter parameters (what an optimizer should train).</summary>
    public static IEnumerable<TorchSharp.Modules.Parameter> Parameters(Qwen2ForCausalLM model) =>
        model.Projections().Where(p => p.Linear.HasAdapter).SelectMany(p => new[] { p.Linear.LoraA!, p.Linear.LoraB! });

    public static void SetEnabled(Qwen2ForCausalLM model, bool enabled)
    {
        foreach (var (_, lin) in model.Projections()) lin.AdapterEnabled = enabled;
    }

    /// <summary>Runs the base model until disposed: <c>using (LoraAdapters.Disable(model)) { ...πref log-probs... }</c>.</summary>
    public static IDisposable Disable(Qwen2ForCausalLM model)
    {
        SetEnabled(model, false);
        return new Restore(() => SetEnabled(model, true));
    }

    /// <summary>Folds every adapter into its base weight and removes it.</summary>
    public static void Merge(Qwen2ForCausalLM model)
    {
        foreach (var (_, lin) in model.Projections()) lin.MergeAdapter();
    }

    /// <summary>Writes adapter_config.json and adapter_model.safetensors (PEFT names: base_model.model.&lt;module&gt;.lora_A.weight).</summary>
    public static void Save(Qwen2ForCausalLM model, string directory, string? baseModelNameOrPath = null)
    {
        var adapted = model.Projections().Where(p => p.Linear.HasAdapter).ToList();
        if (adapted.Count == 0) throw new InvalidOperationException("The model has no LoRA adapters to save.");
        var first = adapted[0].Linear;
        Directory.CreateDirectory(directory);
        var targets = adapted.Select(p => p.Name.Split('.')[^1]).Distinct().ToList();
        var config = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = baseModelNameOrPath,
            ["r"] = first.Rank,
            ["lora_alpha"] = first.Alpha,
            ["lora_dropout"] = first.Dropout,
            ["target_modules"] = new JsonArray(targets.Select(t => (JsonNode)t).ToArray()),
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["use_rslora"] = false,
            ["use_dora"] = false,
            ["modules_to_save"] = null,
        };
        File.WriteAllText(Path.Combine(directory, ConfigFile), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var tensors = adapted.SelectMany(p => new[]
        {
            (PeftPrefix + p.Name + ".lora_A.weight", (Tensor)p.Linear.LoraA!),
            (PeftPrefix + p.Name + ".lora_B.weight", (Tensor)p.Linear.LoraB!),
        });
        SafeTensors.Write(Path.Combine(directory, WeightsFile), tensors);
    }

    /// <summary>Adds the adapters described by a PEFT folder (if the model has none yet) and loads their weights.</summary>
    public static LoraOptions Load(Qwen2ForCausalLM model, string directory)
    {
        var configPath = Path.Combine(directory, ConfigFile);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"No {ConfigFile} in '{directory}'.", configPath);
        var j = JsonFiles.ReadObject(configPath);
        if (j["peft_type"]?.GetValue<string>() is string t && t != "LORA") throw new NotSupportedException($"peft_type '{t}' is not supported (only LORA).");
        if (j["use_dora"]?.GetValue<bool>() == true || j["use_rslora"]?.GetValue<bool>() == true)
            throw new NotSupportedException("DoRA / rsLoRA adapters are not supported.");
        var targets = j["target_modules"] switch
        {
            JsonArray a => a.Select(n => n!.GetValue<string>()).ToList(),
            JsonValue v => throw new NotSupportedException($"target_modules as a regular expression ('{v}') is not supported."),
            _ => throw new InvalidDataException($"{configPath} has no target_modules."),
        };
        LoraOptions options;
        try
        {
            options = new LoraOptions
            {
                Rank = j["r"]?.GetValue<int>() ?? throw new InvalidDataException("no 'r'"),
                Alpha = j["lora_alpha"]?.GetValue<double>() ?? throw new InvalidDataException("no 'lora_alpha'"),
                Dropout = j["lora_dropout"]?.GetValue<double>() ?? 0,
                TargetModules = targets,
            };
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or InvalidDataException)
        {
            throw new InvalidDataException($"{configPath}: {e.Message}", e);
        }
        if (!HasAdapters(model)) Apply(model, options);

        var expected = model.Projections().Where(p => p.Linear.HasAdapter)
            .SelectMany(p => new[] { (PeftPrefix + p.Name + ".lora_A.weight", p.Linear.LoraA!), (PeftPrefix + p.Name + ".lora_B.weight", p.Linear.LoraB!) })
            .ToDictionary(x => x.Item1, x => x.Item2);
        using var reader = new SafeTensors.Reader(Path.Combine(directory, WeightsFile));
        var problems = reader.Entries.Keys.Where(n => !expected.ContainsKey(n)).Select(n => $"unexpected tensor '{n}'")
            .Concat(expected.Keys.Where(n => !reader.Entries.ContainsKey(n)).Select(n => $"missing tensor '{n}'"))
            .Concat(reader.Entries.Values.Where(e => expected.TryGetValue(e.Name, out var p) && !e.Shape.SequenceEqual(p.shape))
                .Select(e => $"tensor '{e.Name}' has shape [{string.Join(", ", e.Shape)}] but the model expects [{string.Join(", ", expected[e.Name].shape)}]"))
            .ToList();
        if (problems.Count > 0)
            throw new InvalidDataException($"Adapter '{directory}' does not match the model: {string.Join("; ", problems.Take(20))}.");
        foreach (var (name, p) in expected) reader.ReadInto(name, p);
        return options;
    }

    private static IEnumerable<(string Name, LoraLinear Linear)> Targets(Qwen2ForCausalLM model, IReadOnlyList<string> targets) =>
        model.Projections().Where(p => p.Name.StartsWith("model.layers.", StringComparison.Ordinal) && targets.Contains(p.Name.Split('.')[^1]));

    private sealed class Restore(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
