using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Persistence;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// A fitted language model as an ML.NET transformer (what <c>Trainers.Sft</c> returns): for each row it renders the
/// prompt with the template (template + separator) and writes the greedy continuation, up to EOS or the token
/// limit, to the output column. Saves with <c>mlContext.Model.Save</c> with its weights (as the step scorer does)
/// and loads with <c>mlContext.Model.Load</c> in any process that references this library.
/// </summary>
public sealed class TextGenerationTransformer : ChainedTransformer
{
    internal TextGenerationTransformer(ITransformer inner, Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer) : base(inner)
    {
        Model = model;
        Tokenizer = tokenizer;
    }

    internal Qwen2ForCausalLM Model { get; }
    internal ByteLevelBpeTokenizer Tokenizer { get; }

    /// <summary>Writes the trained model as a Hugging Face folder (config.json, model.safetensors, tokenizer.json).</summary>
    public void SaveModel(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ModelCheckpoint.Save(Model, directory);
        Tokenizer.Save(directory);
    }

    internal static IEstimator<ITransformer> BuildChain(MLContext mlContext, Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer,
        PromptTemplate template, int maxNewTokens, string promptColumn, string outputColumn) =>
        BuildChain(mlContext, model, tokenizer, template, maxNewTokens, promptColumn, outputColumn, out _);

    internal static IEstimator<ITransformer> BuildChain(MLContext mlContext, Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer,
        PromptTemplate template, int maxNewTokens, string promptColumn, string outputColumn, out string sha)
    {
        var bundle = GenerationBundle.Create(model, tokenizer, template, maxNewTokens);
        sha = ScorerBundle.Sha256(bundle);
        var device = model.Device.type == TorchSharp.DeviceType.CPU ? null : model.Device;
        TextGenerationMapping.Register(sha, new GenerationModel(model, tokenizer, template, maxNewTokens), device);
        var t = mlContext.Transforms;
        IEstimator<ITransformer> mapping = t.CustomMapping(TextGenerationMapping.MapKeyOn(device), TextGenerationMapping.KeyContractName)
            .Append(t.Conversion.MapValue(TextGenerationMapping.BundleColumn, new[] { new KeyValuePair<string, byte[]>(LoadedBundles.WeightsKey, bundle) }, TextGenerationMapping.KeyColumn))
            .Append(t.CustomMapping(TextGenerationMapping.MapOn(device), TextGenerationMapping.ContractName));
        return PersistedMapping.Build(t, new BundleSettings { BundleSha256 = sha }, TextGenerationMapping.ConfigColumn, promptColumn,
            new[] { (TextGenerationMapping.PromptColumn, promptColumn) }, mapping,
            new[] { (TextGenerationMapping.TextColumn, outputColumn) }, TextGenerationMapping.InternalColumns);
    }
}

/// <summary>A loaded model ready to generate (thread-safe: one generation at a time).</summary>
internal sealed class GenerationModel(Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer, PromptTemplate template, int maxNewTokens)
{
    private readonly object _lock = new();

    public string Generate(string prompt)
    {
        var ids = ((ITextTokenizer)tokenizer).Encode(template.Build(prompt ?? "", ""));
        if (ids.Length == 0) return "";
        var eos = new[] { tokenizer.EosId, model.Config.EosTokenId }.OfType<int>().Distinct().ToArray();
        lock (_lock)
            return new TextGenerator(model, i => tokenizer.Decode(i)).Generate(ids, new GenerationOptions { MaxNewTokens = maxNewTokens, EosIds = eos }).Text ?? "";
    }
}

/// <summary>One model, its tokenizer and its generation settings as bytes that travel inside an ML.NET zip.</summary>
internal static class GenerationBundle
{
    private sealed class Manifest
    {
        public int FormatVersion { get; set; } = 1;
        public string TemplateName { get; set; } = "";
        public string Template { get; set; } = "";
        public string Separator { get; set; } = "";
        public int MaxNewTokens { get; set; }
    }

    public static byte[] Create(Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer, PromptTemplate template, int maxNewTokens) =>
        BundleArchive.Create(staging =>
        {
            ModelCheckpoint.Save(model, Path.Combine(staging, "model"));
            tokenizer.Save(Path.Combine(staging, "model"));
            File.WriteAllText(Path.Combine(staging, "generation.json"), JsonSerializer.Serialize(new Manifest
            {
                TemplateName = template.Name, Template = template.Template, Separator = template.Separator, MaxNewTokens = maxNewTokens,
            }));
        });

    /// <summary>Loads the model of a bundle whose hash <paramref name="sha"/> has been checked.</summary>
    public static GenerationModel Load(ReadOnlySpan<byte> bundle, string sha, TorchSharp.torch.Device? device = null)
    {
        // The unpacked folder is in use (not evicted from the cache) until the model is read from it.
        using var inUse = UnpackedCacheLimit.Use(BundleArchive.CacheDirectory("stepdpo-generators"), sha);
        string dir = BundleArchive.Unpack(bundle, sha, "stepdpo-generators", "generation.json", "language model");
        var m = JsonSerializer.Deserialize<Manifest>(File.ReadAllText(Path.Combine(dir, "generation.json")))
                ?? throw new InvalidDataException("The language model's manifest is unreadable.");
        var modelDir = Path.Combine(dir, "model");
        var (model, tokenizer) = ModelFolder.Load(modelDir, device: device);
        return new GenerationModel(model, tokenizer,
            new PromptTemplate(m.TemplateName, m.Template, m.Separator), m.MaxNewTokens);
    }
}

/// <summary>The stateless custom mapping behind <see cref="TextGenerationTransformer"/> (see Persistence/PersistedMapping.cs).</summary>
internal static class TextGenerationMapping
{
    public const string ContractName = "Microsoft.ML.StepDpo.TextGeneration.v1";
    public const string KeyContractName = "Microsoft.ML.StepDpo.TextGeneration.WeightsKey.v1";
    public const string ConfigColumn = "__stepdpo_generation_config";
    public const string KeyColumn = "__stepdpo_generation_key";
    public const string BundleColumn = "__stepdpo_generation_bundle";
    public const string PromptColumn = "__stepdpo_generation_prompt";
    public const string TextColumn = "__stepdpo_generation_text";
    public static readonly string[] InternalColumns = { KeyColumn, BundleColumn, PromptColumn, TextColumn };

    public static void Register(string sha, GenerationModel model, TorchSharp.torch.Device? device) => LoadedBundles.Register(sha, model, device);

    /// <summary>Input of the key mapping: the config column, whose bundle hash says whether the weights are needed.</summary>
    public sealed class KeyInput
    {
        [ColumnName(ConfigColumn)] public string Config { get; set; } = "";
    }

    /// <summary>Output of the key mapping: the ValueMapping key (absent once the model is loaded).</summary>
    public sealed class KeyOutput
    {
        [ColumnName(KeyColumn)] public string Key { get; set; } = "";
    }

    /// <summary>The key mapping for a model on <paramref name="device"/> (null: the CPU).</summary>
    public static Action<KeyInput, KeyOutput> MapKeyOn(TorchSharp.torch.Device? device) => (input, output) =>
        output.Key = LoadedBundles.KeyFor(PersistedMapping.ReadConfig<BundleSettings>(input.Config).BundleSha256, device);

    [CustomMappingFactoryAttribute(KeyContractName)]
    public sealed class KeyFactory : CustomMappingFactory<KeyInput, KeyOutput>
    {
        // Created while the model loads: the device named for that load (LoadedModelDevice), else the CPU.
        public override Action<KeyInput, KeyOutput> GetMapping() => MapKeyOn(LoadedModelDevice.Current);
    }

    public sealed class Input
    {
        [ColumnName(ConfigColumn)] public string Config { get; set; } = "";
        [ColumnName(BundleColumn)] public VBuffer<byte> Bundle;
        [ColumnName(PromptColumn)] public string Prompt { get; set; } = "";
    }

    public sealed class Output
    {
        [ColumnName(TextColumn)] public string Text { get; set; } = "";
    }

    /// <summary>The generating mapping for a model on <paramref name="device"/> (null: the CPU).</summary>
    public static Action<Input, Output> MapOn(TorchSharp.torch.Device? device) => (input, output) =>
    {
        var settings = PersistedMapping.ReadConfig<BundleSettings>(input.Config);
        var sha = settings.BundleSha256;
        var model = LoadedBundles.Resolve(sha, input.Bundle, bytes =>
        {
            LoadedBundles.CheckHash(bytes, sha, "language model");
            return GenerationBundle.Load(bytes, sha, device);
        }, "language model", device);
        output.Text = model.Generate(input.Prompt);
    };

    [CustomMappingFactoryAttribute(ContractName)]
    public sealed class Factory : CustomMappingFactory<Input, Output>
    {
        // Created while the model loads: the device named for that load (LoadedModelDevice), else the CPU.
        public override Action<Input, Output> GetMapping() => MapOn(LoadedModelDevice.Current);
    }
}
