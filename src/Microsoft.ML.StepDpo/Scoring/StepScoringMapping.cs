using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Persistence;
using Microsoft.ML.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// The stateless custom mapping behind <see cref="StepScoringTransformer"/> (see Persistence/PersistedMapping.cs).
/// The scorer's weights travel in the zip as one byte vector produced by a ValueMapping, looked up by a key that a
/// second stateless mapping (<see cref="MapKeyOn"/>) emits only while the scorer is not loaded in this process: the
/// first row loads the scorer from that vector and caches it by content hash and device, later rows get an empty vector
/// and reuse it (see <see cref="LoadedBundles"/>). The vector holds the weights themselves only when they are small;
/// otherwise it holds references to the model folders (see <see cref="ScorerBundle"/>).
/// </summary>
internal static class StepScoringMapping
{
    public const string ContractName = "Microsoft.ML.StepDpo.StepScoring.v1";
    public const string KeyContractName = "Microsoft.ML.StepDpo.StepScoring.WeightsKey.v1";
    public const string ConfigColumn = "__stepdpo_scoring_config";
    public const string KeyColumn = "__stepdpo_scoring_key";
    public const string BundleColumn = "__stepdpo_scoring_bundle";
    public const string PromptColumn = "__stepdpo_scoring_prompt";
    public const string SolutionColumn = "__stepdpo_scoring_solution";
    public const string RewardsColumn = "__stepdpo_scoring_rewards";
    public const string TotalColumn = "__stepdpo_scoring_total";
    public const string FirstErrorColumn = "__stepdpo_scoring_first_error";
    public const string StepCountColumn = "__stepdpo_scoring_step_count";

    public static readonly string[] InternalColumns =
        { KeyColumn, BundleColumn, PromptColumn, SolutionColumn, RewardsColumn, TotalColumn, FirstErrorColumn, StepCountColumn };

    /// <summary>Makes an in-memory scorer available under its bundle hash and its device (so a freshly fitted model does not reload itself).</summary>
    public static void Register(string sha, StepScorer scorer) => LoadedBundles.Register(sha, scorer, DeviceOf(scorer));

    /// <summary>The device a scorer runs on; null for the CPU.</summary>
    internal static Device? DeviceOf(StepScorer scorer) => scorer.Policy.Device.type == DeviceType.CPU ? null : scorer.Policy.Device;

    /// <summary>Forgets the loaded scorers and generators (benchmarks measure cold loads with it).</summary>
    internal static void ClearCache() => LoadedBundles.Clear();

    /// <summary>The scorer of a bundle, checked against its recorded hash and loaded once per process and device.</summary>
    internal static StepScorer Load(ReadOnlySpan<byte> bundle, string sha, Device? device = null)
    {
        LoadedBundles.CheckHash(bundle, sha, "step scorer");
        return ScorerBundle.Load(bundle, sha, device);
    }

    /// <summary>Input of the key mapping: the config column, whose bundle hash says whether the weights are needed.</summary>
    public sealed class KeyInput
    {
        [ColumnName(ConfigColumn)] public string Config { get; set; } = "";
    }

    /// <summary>Output of the key mapping: the ValueMapping key (absent once the scorer is loaded).</summary>
    public sealed class KeyOutput
    {
        [ColumnName(KeyColumn)] public string Key { get; set; } = "";
    }

    public static void MapKey(KeyInput input, KeyOutput output) => MapKey(input, output, null);

    /// <summary>The key mapping for a scorer on <paramref name="device"/> (null: the CPU).</summary>
    public static Action<KeyInput, KeyOutput> MapKeyOn(Device? device) => device is null ? MapKey : (i, o) => MapKey(i, o, device);

    private static void MapKey(KeyInput input, KeyOutput output, Device? device) =>
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
        [ColumnName(SolutionColumn)] public string Solution { get; set; } = "";
    }

    public sealed class Output
    {
        [ColumnName(RewardsColumn)] public VBuffer<float> Rewards;
        [ColumnName(TotalColumn)] public float Total { get; set; }
        [ColumnName(FirstErrorColumn)] public int FirstErrorStep { get; set; }
        [ColumnName(StepCountColumn)] public int StepCount { get; set; }
    }

    public static void Map(Input input, Output output) => Map(input, output, null);

    /// <summary>The scoring mapping for a scorer on <paramref name="device"/> (null: the CPU).</summary>
    public static Action<Input, Output> MapOn(Device? device) => device is null ? Map : (i, o) => Map(i, o, device);

    private static void Map(Input input, Output output, Device? device)
    {
        var settings = PersistedMapping.ReadConfig<BundleSettings>(input.Config);
        var sha = settings.BundleSha256;
        var scorer = LoadedBundles.Resolve(sha, input.Bundle, bytes => Load(bytes, sha, device), "step scorer", device);
        var scores = scorer.Score(input.Prompt ?? "", input.Solution ?? "");
        output.Rewards = new VBuffer<float>(scores.Rewards.Length, scores.Rewards);
        output.Total = scores.Total;
        output.FirstErrorStep = scores.FirstErrorStep;
        output.StepCount = scores.Rewards.Length;
    }

    [CustomMappingFactoryAttribute(ContractName)]
    public sealed class Factory : CustomMappingFactory<Input, Output>
    {
        // Created while the model loads: the device named for that load (LoadedModelDevice), else the CPU.
        public override Action<Input, Output> GetMapping() => MapOn(LoadedModelDevice.Current);
    }
}
