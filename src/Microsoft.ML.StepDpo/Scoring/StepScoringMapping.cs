using System.Collections.Concurrent;
using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Persistence;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>Settings a saved step-scoring transformer carries in its config column.</summary>
internal sealed class StepScoringSettings
{
    /// <summary>SHA-256 of the scorer bundle (the weights column); the cache key of the loaded models.</summary>
    public string BundleSha256 { get; set; } = "";
}

/// <summary>
/// The stateless custom mapping behind <see cref="StepScoringTransformer"/> (see Persistence/PersistedMapping.cs).
/// The scorer's weights travel in the zip as one byte vector produced by a ValueMapping; the first row that
/// needs a scorer loads it from that vector and caches it by content hash, later rows reuse it.
/// </summary>
internal static class StepScoringMapping
{
    public const string ContractName = "Microsoft.ML.StepDpo.StepScoring.v1";
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

    private static readonly ConcurrentDictionary<string, Lazy<StepScorer>> s_scorers = new();

    /// <summary>Makes an in-memory scorer available under its bundle hash (so a freshly fitted model does not reload itself).</summary>
    public static void Register(string sha, StepScorer scorer) => s_scorers[sha] = new Lazy<StepScorer>(() => scorer);

    /// <summary>Forgets the loaded scorers (benchmarks measure cold loads with it).</summary>
    internal static void ClearCache() => s_scorers.Clear();

    internal static StepScorer Get(StepScoringSettings settings, Func<byte[]> bundle) =>
        s_scorers.GetOrAdd(settings.BundleSha256, _ => new Lazy<StepScorer>(() =>
        {
            var bytes = bundle();
            if (bytes.Length == 0) throw new InvalidDataException("The step-scoring model holds no weights.");
            var sha = ScorerBundle.Sha256(bytes);
            if (sha != settings.BundleSha256)
                throw new InvalidDataException($"The step scorer's weights do not match their recorded hash (got {sha}, expected {settings.BundleSha256}): the model file is corrupted.");
            return ScorerBundle.Load(bytes);
        }, LazyThreadSafetyMode.ExecutionAndPublication)).Value;

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
        var settings = PersistedMapping.ReadConfig<StepScoringSettings>(input.Config);
        var bundle = input.Bundle;
        var scorer = Get(settings, () => bundle.DenseValues().ToArray());
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
