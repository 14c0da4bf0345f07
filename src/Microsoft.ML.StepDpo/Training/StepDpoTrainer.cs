using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Scoring;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// Step-DPO as an ML.NET trainer: learns from step pairs (a correct and an erroneous next step after a shared
/// correct prefix) with the DPO loss conditioned on that prefix, and returns a <see cref="StepScoringTransformer"/>.
/// Create it with <c>mlContext.StepDpo().Trainers.StepDpo(options)</c>; answer-level DPO is the same trainer
/// with no prefix column (<c>Trainers.Dpo</c>).
/// </summary>
public sealed class StepDpoTrainer : LanguageModelTrainer<StepScoringTransformer>
{
    /// <summary>Options of <see cref="StepDpoTrainer"/>. Defaults follow the paper's runs (arXiv 2406.18629) unless noted.</summary>
    public sealed class Options : LanguageModelTrainerOptions
    {
        /// <summary>Defaults of the paper's runs: learning rate 5e-7, 4 epochs.</summary>
        public Options() : base(learningRate: 5e-7, epochs: 4) { }

        /// <summary>Text column with the problem. Default "prompt" (Math-Step-DPO-10K).</summary>
        public string PromptColumnName { get; set; } = "prompt";
        /// <summary>Text column with the correct steps before the step in question, ending with "Step k:". Default
        /// "initial_reason_steps". Null for answer-level DPO (chosen/rejected are whole solutions).</summary>
        public string? InitialReasonStepsColumnName { get; set; } = "initial_reason_steps";
        /// <summary>Text column with the preferred step. Default "chosen".</summary>
        public string ChosenColumnName { get; set; } = "chosen";
        /// <summary>Text column with the erroneous step. Default "rejected".</summary>
        public string RejectedColumnName { get; set; } = "rejected";



        /// <summary>β of the loss: the strength of the pull towards the reference model πref (the starting model). Default 0.4.</summary>
        public double Beta { get; set; } = 0.4;
        /// <summary>Loss family. Default sigmoid (DPO / Step-DPO).</summary>
        public PreferenceLossKind Loss { get; set; } = PreferenceLossKind.Sigmoid;
        /// <summary>Label smoothing ε for the sigmoid (cDPO) and robust losses. Default 0.</summary>
        public double LabelSmoothing { get; set; }
        /// <summary>Weight of the chosen response's NLL added to the loss (RPO). Default 0 (off).</summary>
        public double NllWeight { get; set; }

        /// <summary>Longest context kept (its end) when context + step is too long. Default 512.</summary>
        public int MaxPromptLength { get; set; } = 512;
        /// <summary>Append EOS after the step. Default false: a step is not the end of an answer (as in the Step-DPO authors' trainer).</summary>
        public bool AppendEos { get; set; }


        /// <summary>Compute the reference model πref's log-probs once before training instead of every step. Default true (same math).</summary>
        public bool PrecomputeReferenceLogProbs { get; set; } = true;
        /// <summary>One forward over [prefix][chosen][rejected] per pair instead of two sequences. Default true (same math).</summary>
        public bool PrefixSharing { get; set; } = true;


        /// <summary>Reward below which the scorer calls a step an error. Default 0.</summary>
        public double ErrorThreshold { get; set; }
        /// <summary>Column names of the fitted step scorer.</summary>
        public StepScoringColumns ScoringColumns { get; set; } = new();
        /// <summary>
        /// Where the saved scorer's weights live after full fine-tuning: in the zip up to
        /// <see cref="ScorerWeightsOptions.EmbedLimitBytes"/> (default 256 MiB for policy and reference together), else
        /// the trained policy is written to <see cref="ScorerWeightsOptions.PolicyDirectory"/> (then required) and the zip
        /// references it and the base model folder by path and SHA-256. Not used with LoRA.
        /// </summary>
        public ScorerWeightsOptions ScorerWeights { get; set; } = new();

        internal override IEnumerable<KeyValuePair<string, string>> MathSettings()
        {
            string F(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
            foreach (var item in base.MathSettings()) yield return item;
            yield return new("beta", F(Beta));
            yield return new("loss", Loss.ToString());
            yield return new("label smoothing", F(LabelSmoothing));
            yield return new("NLL weight", F(NllWeight));
            yield return new("max prompt length", MaxPromptLength.ToString(System.Globalization.CultureInfo.InvariantCulture));
            yield return new("append EOS", AppendEos ? "true" : "false");
        }
    }

    private readonly Options _options;
    private readonly bool _answerLevel;

    // answerLevel: answer-level DPO, with no prefix column whatever the options say (the caller's options are not changed).
    internal StepDpoTrainer(MLContext context, Options options, bool answerLevel = false) : base(context, options)
    {
        _options = options;
        _answerLevel = answerLevel;
        if (!(options.Beta > 0)) throw new ArgumentOutOfRangeException(nameof(options), "Beta must be positive.");
        (options.ScorerWeights ?? throw new ArgumentNullException(nameof(options), "Options.ScorerWeights must not be null.")).Validate();
    }

    private protected override string Method => _answerLevel ? "DPO" : "Step-DPO";

    private string? PrefixColumn => _answerLevel ? null : _options.InitialReasonStepsColumnName;

    private IEnumerable<string> InputColumns()
    {
        yield return _options.PromptColumnName;
        if (PrefixColumn is not null) yield return PrefixColumn;
        yield return _options.ChosenColumnName;
        yield return _options.RejectedColumnName;
    }

    private protected override void CheckInputs(SchemaChecks columns)
    {
        foreach (var name in InputColumns()) columns.RequireText(name);
    }

    // The fitted scorer adds the output columns of ScoringColumns: step rewards (vector of Single), total reward (Single),
    // first error step and step count (Int32). It reads ScoringColumns.Prompt and .Solution, which the training data
    // need not have: the columns are those it adds to data that has them.
    private protected override SchemaShape WithOutputColumns(SchemaShape inputSchema)
    {
        var c = _options.ScoringColumns;
        return inputSchema.WithColumnsOf<StepScoringMapping.Output>(Context.Transforms, new Dictionary<string, string>
        {
            [StepScoringMapping.RewardsColumn] = c.StepRewards, [StepScoringMapping.TotalColumn] = c.TotalReward,
            [StepScoringMapping.FirstErrorColumn] = c.FirstErrorStep, [StepScoringMapping.StepCountColumn] = c.StepCount,
        });
    }

    private protected override StepScoringTransformer Train(IDataView input, TrainingRun run)
    {
        var o = _options;
        var rows = ReadRows(input);
        var (policy, tokenizer) = run.LoadBaseModel();
        // Decided before training: a full fine-tune too large to embed in the zip writes its policy to a folder that the
        // scorer references (an error now, not after training, when that cannot be done).
        string? referenceFolder = o.BaseModel is null ? o.BaseModelPath : null;
        string? policyFolder = o.UseLora ? null : o.ScorerWeights.PolicyFolderFor(2 * WeightBytes(policy), referenceFolder);
        // Full fine-tuning trains every weight, so the reference model πref is a frozen copy of the start; with LoRA it
        // is the same network with the adapters disabled. With cached reference log-probs the copy is not needed while
        // training (they come from the policy before its first update), only by the scorer: it is loaded after training,
        // so the training peak holds one model less.
        Qwen2ForCausalLM? reference = o.UseLora || o.PrecomputeReferenceLogProbs ? null : Clone(policy);

        var builder = new PreferencePairBuilder(tokenizer, o.Template, o.MaxLength, o.MaxPromptLength, o.AppendEos);
        var report = new PairBuildReport();
        var pairs = builder.Build(rows, report);
        run.CountExamples(report.Rows, report.Used, report.EmptyResponse, report.TooLong, report.PromptTruncated, report.ResponseTruncated);

        var model = new Qwen2TrainingModel(policy);
        ReferenceLogProbs? cache = null;
        if (o.PrecomputeReferenceLogProbs)
        {
            var refView = reference is null ? model : new Qwen2TrainingModel(reference);
            cache = ReferenceLogProbs.Compute(refView, pairs, Math.Max(1, o.BatchSize), o.PrefixSharing, cancellationToken: o.CancellationToken);
            run.Log($"Reference-model log-probs computed for {pairs.Count} pairs.");
        }
        var objective = new PreferenceObjective
        {
            Beta = o.Beta, Loss = o.Loss, LabelSmoothing = o.LabelSmoothing, NllWeight = o.NllWeight, PrefixSharing = o.PrefixSharing,
            Cache = cache, ReferenceModel = cache is null && reference is not null ? new Qwen2TrainingModel(reference) : null,
        };
        run.Optimize(model, objective, pairs);
        if (!o.UseLora && reference is null)
            reference = BaseModelLoader.Load(Context, o.BaseModelPath, o.BaseModel, o.BaseTokenizer).Model;

        var scorer = new StepScorer(policy, reference, tokenizer, o.Template, o.Beta, o.ErrorThreshold);
        if (policyFolder is not null)
        {
            ModelCheckpoint.Save(policy, policyFolder);
            tokenizer.Save(policyFolder);
            run.Log($"Trained policy written to '{policyFolder}'; the step scorer references it and '{referenceFolder}' by path and SHA-256.");
        }
        var chain = StepScoringTransformer.BuildChain(Context, scorer, o.BaseModelPath, o.ScoringColumns, out _, policyFolder: policyFolder);
        var schemaOnly = Context.Data.LoadFromEnumerable(new[] { new ScoringSchemaRow() }, SchemaFor(o.ScoringColumns));
        return new StepScoringTransformer(chain.Fit(schemaOnly), scorer, policyFolder);
    }

    /// <summary>Bytes of a model's weights as stored (its parameters at their dtype).</summary>
    private static long WeightBytes(Qwen2ForCausalLM model) => model.parameters().Sum(p => p.numel() * p.ElementSize);

    private sealed class ScoringSchemaRow
    {
        public string Prompt { get; set; } = "";
        public string Solution { get; set; } = "";
    }

    private static SchemaDefinition SchemaFor(StepScoringColumns columns)
    {
        var def = SchemaDefinition.Create(typeof(ScoringSchemaRow));
        def[nameof(ScoringSchemaRow.Prompt)].ColumnName = columns.Prompt;
        def[nameof(ScoringSchemaRow.Solution)].ColumnName = columns.Solution;
        return def;
    }

    private List<PreferenceRow> ReadRows(IDataView input)
    {
        var cols = InputColumns().Select(n => input.Schema[n]).ToArray();
        var rows = new List<PreferenceRow>();
        using var cursor = input.GetRowCursor(cols);
        var getters = cols.Select(c => cursor.GetGetter<ReadOnlyMemory<char>>(c)).ToArray();
        ReadOnlyMemory<char> v = default;
        string Get(int i) { getters[i](ref v); return v.ToString(); }
        while (cursor.MoveNext())
        {
            int k = 0;
            string prompt = Get(k++);
            string prefix = PrefixColumn is null ? "" : Get(k++);
            rows.Add(new PreferenceRow(prompt, prefix, Get(k++), Get(k)));
        }
        return rows;
    }

    /// <summary>An independent copy with the same weights (the frozen reference model πref of full fine-tuning), on
    /// <paramref name="device"/> (default: the source's).</summary>
    internal static Qwen2ForCausalLM Clone(Qwen2ForCausalLM source, Device? device = null)
    {
        var copy = new Qwen2ForCausalLM(source.Config, source.DType, device ?? source.Device);
        using var noGrad = torch.no_grad();
        var src = source.named_parameters().GroupBy(p => p.name).ToDictionary(g => g.Key, g => g.First().parameter);
        foreach (var (name, p) in copy.named_parameters()) p.copy_(src[name]);
        return copy;
    }
}
