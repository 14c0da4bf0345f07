using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Persistence;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// The stateless custom mapping behind <see cref="StepScoringTransformer"/> (see Persistence/PersistedMapping.cs).
/// The scorer's weights travel in the zip as one byte vector produced by a ValueMapping, looked up by a key that a
/// second stateless mapping (<see cref="MapKey"/>) emits only while the scorer is not loaded in this process: the
/// first row loads the scorer from that vector and caches it by content hash, later rows get an empty vector and
/// reuse it (see <see cref="LoadedBundles"/>).
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

    /// <summary>Makes an in-memory scorer available under its bundle hash (so a freshly fitted model does not reload itself).</summary>
    public static void Register(string sha, StepScorer scorer) => LoadedBundles.Register(sha, scorer);

    /// <summary>Forgets the loaded scorers and generators (benchmarks measure cold loads with it).</summary>
    internal static void ClearCache() => LoadedBundles.Clear();

    /// <summary>The scorer of a bundle, checked against its recorded hash and loaded once per process.</summary>
    internal static StepScorer Load(ReadOnlySpan<byte> bundle, string sha)
    {
        LoadedBundles.CheckHash(bundle, sha, "step scorer");
        return ScorerBundle.Load(bundle, sha);
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

    public static void MapKey(KeyInput input, KeyOutput output) =>
        output.Key = LoadedBundles.KeyFor(PersistedMapping.ReadConfig<BundleSettings>(input.Config).BundleSha256);

    [CustomMappingFactoryAttribute(KeyContractName)]
    public sealed class KeyFactory : CustomMappingFactory<KeyInput, KeyOutput>
    {
        public override Action<KeyInput, KeyOutput> GetMapping() => MapKey;
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

    public static void Map(Input input, Output output)
    {
        var settings = PersistedMapping.ReadConfig<BundleSettings>(input.Config);
        var sha = settings.BundleSha256;
        var scorer = LoadedBundles.Resolve(sha, input.Bundle, bytes => Load(bytes, sha), "step scorer");
        var scores = scorer.Score(input.Prompt ?? "", input.Solution ?? "");
        output.Rewards = new VBuffer<float>(scores.Rewards.Length, scores.Rewards);
        output.Total = scores.Total;
        output.FirstErrorStep = scores.FirstErrorStep;
        output.StepCount = scores.Rewards.Length;
    }

    [CustomMappingFactoryAttribute(ContractName)]
    public sealed class Factory : CustomMappingFactory<Input, Output>
    {
        public override Action<Input, Output> GetMapping() => Map;
    }
}
