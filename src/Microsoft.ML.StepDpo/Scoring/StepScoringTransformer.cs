using Microsoft.ML.StepDpo.Persistence;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>Names of the columns a <see cref="StepScoringTransformer"/> reads and writes.</summary>
public sealed class StepScoringColumns
{
    /// <summary>Text column with the problem. Default "prompt".</summary>
    public string Prompt { get; set; } = "prompt";
    /// <summary>Text column with the solution to score ("Let's think step by step.\nStep 1: …"). Default "solution".</summary>
    public string Solution { get; set; } = "solution";
    /// <summary>Output: vector of float, β·(log πθ − log πref) per step. Default "StepRewards".</summary>
    public string StepRewards { get; set; } = "StepRewards";
    /// <summary>Output: float, the sum of the step rewards. Default "TotalReward".</summary>
    public string TotalReward { get; set; } = "TotalReward";
    /// <summary>Output: int, 1-based first step whose reward is below the threshold; -1 if none. Default "FirstErrorStep".</summary>
    public string FirstErrorStep { get; set; } = "FirstErrorStep";
    /// <summary>Output: int, the number of steps scored. Default "StepCount".</summary>
    public string StepCount { get; set; } = "StepCount";
}

/// <summary>
/// The fitted Step-DPO model as an ML.NET transformer: a step scorer. For each row it segments the solution
/// into steps and outputs the implicit reward of each step, β·(log πθ(step | context) − log πref(step | context)),
/// their sum, and the first step whose reward falls below the threshold. It saves with
/// <c>mlContext.Model.Save</c> and loads with <c>mlContext.Model.Load</c> (or <c>mlContext.StepDpo().LoadModel</c>, which
/// also places the weights on the context's device) in any process that references this library (no registration
/// needed). What the zip holds: after full fine-tuning, the policy and reference weights when they are small
/// (<see cref="ScorerWeightsOptions.EmbedLimitBytes"/>), else references to their Hugging Face folders by path and
/// SHA-256 (the trained policy in <see cref="ScorerWeightsOptions.PolicyDirectory"/>, the reference in the base model
/// folder); with LoRA, the adapters and a reference to the base model folder (or the base itself when training started
/// from an in-memory model). The weights are read at the first row, not by <c>Model.Load</c>.
/// </summary>
public sealed class StepScoringTransformer : ChainedTransformer
{
    internal StepScoringTransformer(ITransformer inner, StepScorer scorer, string? policyFolder = null) : base(inner)
    {
        Scorer = scorer;
        PolicyFolder = policyFolder;
    }

    internal StepScorer Scorer { get; }

    /// <summary>The folder the saved scorer references for its policy; null when the policy travels in the zip.</summary>
    internal string? PolicyFolder { get; }

    /// <summary>
    /// The most tokens (context + step) the scorer reads: the model's <c>max_position_embeddings</c>. The steps of a
    /// solution that do not fit get no reward: NaN in <see cref="StepScoringColumns.StepRewards"/>, left out of the
    /// total and of the first-error search (and the row is read no further than the context needs).
    /// </summary>
    public int ContextLength => Scorer.ContextLength;

    /// <summary>
    /// Fail a row whose solution does not fit <see cref="ContextLength"/> instead of leaving its last steps unscored.
    /// Default false. The setting belongs to the loaded scorer, so it holds for every transformer sharing it in this process.
    /// </summary>
    public bool FailBeyondContext
    {
        get => Scorer.FailBeyondContext;
        set => Scorer.FailBeyondContext = value;
    }

    /// <summary>
    /// Writes the trained policy: a Hugging Face folder (config.json, model.safetensors, tokenizer.json) after full
    /// fine-tuning, or the LoRA adapters in the PEFT layout (adapter_config.json, adapter_model.safetensors). When the
    /// trainer already wrote the policy to <paramref name="directory"/> (<see cref="ScorerWeightsOptions.PolicyDirectory"/>,
    /// which the saved scorer references), nothing is written: the files are there, and rewriting them would change
    /// what the saved scorer checks.
    /// </summary>
    public void SavePolicy(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (PolicyFolder is not null && ScorerWeightsOptions.SameFolder(directory, PolicyFolder))
            return;
        if (Scorer.Reference is null)
            Modeling.LoraAdapters.Save(Scorer.Policy, directory);
        else
            Modeling.ModelCheckpoint.Save(Scorer.Policy, directory);
        Scorer.Tokenizer.Save(directory);
    }

    // legacyCarrier: the chain as saved before the weights were gated (format-1 bundle, a constant key, so every row
    // copies the weights); kept so that benchmarks can compare both in one run, and old zips still load.
    // policyFolder: full fine-tuning with the weights referenced, not embedded: the folder the trained policy was written
    // to; baseModelPath is then the reference model's folder.
    internal static IEstimator<ITransformer> BuildChain(MLContext mlContext, StepScorer scorer, string? baseModelPath, StepScoringColumns columns, out string sha,
        bool legacyCarrier = false, string? policyFolder = null)
    {
        var bundle = ScorerBundle.Create(scorer, baseModelPath, legacyCarrier, policyFolder);
        sha = ScorerBundle.Sha256(bundle);
        StepScoringMapping.Register(sha, scorer);
        var device = StepScoringMapping.DeviceOf(scorer);
        var t = mlContext.Transforms;
        var settings = new BundleSettings { BundleSha256 = sha };
        IEstimator<ITransformer> key = legacyCarrier
            ? t.Expression(StepScoringMapping.KeyColumn, "x => \"" + LoadedBundles.WeightsKey + "\"", columns.Prompt)
            : t.CustomMapping(StepScoringMapping.MapKeyOn(device), StepScoringMapping.KeyContractName);
        var mapping = key
            .Append(t.Conversion.MapValue(StepScoringMapping.BundleColumn, new[] { new KeyValuePair<string, byte[]>(LoadedBundles.WeightsKey, bundle) }, StepScoringMapping.KeyColumn))
            .Append(t.CustomMapping(StepScoringMapping.MapOn(device), StepScoringMapping.ContractName));
        return PersistedMapping.Build(t, settings, StepScoringMapping.ConfigColumn, columns.Prompt,
            new[] { (StepScoringMapping.PromptColumn, columns.Prompt), (StepScoringMapping.SolutionColumn, columns.Solution) },
            mapping,
            new[]
            {
                (StepScoringMapping.RewardsColumn, columns.StepRewards), (StepScoringMapping.TotalColumn, columns.TotalReward),
                (StepScoringMapping.FirstErrorColumn, columns.FirstErrorStep), (StepScoringMapping.StepCountColumn, columns.StepCount),
            },
            StepScoringMapping.InternalColumns);
    }
}
