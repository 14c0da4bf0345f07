using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Text;
using TorchSharp;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// Step-DPO as an ML.NET trainer: learns from step pairs (a correct and an erroneous next step after a shared
/// correct prefix) with the DPO loss conditioned on that prefix, and returns a <see cref="StepScoringTransformer"/>.
/// Create it with <c>mlContext.StepDpo().Trainers.StepDpo(options)</c>; answer-level DPO is the same trainer
/// with no prefix column (<c>Trainers.Dpo</c>).
/// </summary>
public sealed class StepDpoTrainer : IEstimator<StepScoringTransformer>
{
    /// <summary>Options of <see cref="StepDpoTrainer"/>. Defaults follow the paper's reference runs unless noted.</summary>
    public sealed class Options : LanguageModelTrainerOptions
    {
        /// <summary>Defaults of the Step-DPO reference runs: learning rate 5e-7, 4 epochs.</summary>
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



        /// <summary>β of the loss: the strength of the pull towards the reference. Default 0.4.</summary>
        public double Beta { get; set; } = 0.4;
        /// <summary>Loss family. Default sigmoid (DPO / Step-DPO).</summary>
        public PreferenceLossKind Loss { get; set; } = PreferenceLossKind.Sigmoid;
        /// <summary>Label smoothing ε for the sigmoid (cDPO) and robust losses. Default 0.</summary>
        public double LabelSmoothing { get; set; }
        /// <summary>Weight of the chosen response's NLL added to the loss (RPO). Default 0 (off).</summary>
        public double NllWeight { get; set; }

        /// <summary>Longest context kept (its end) when context + step is too long. Default 512.</summary>
        public int MaxPromptLength { get; set; } = 512;
        /// <summary>Append EOS after the step. Default false: a step is not the end of an answer (as the reference).</summary>
        public bool AppendEos { get; set; }


        /// <summary>Compute reference log-probs once before training instead of every step. Default true (same math).</summary>
        public bool PrecomputeReferenceLogProbs { get; set; } = true;
        /// <summary>One forward over [prefix][chosen][rejected] per pair instead of two sequences. Default true (same math).</summary>
        public bool PrefixSharing { get; set; } = true;


        /// <summary>Reward below which the scorer calls a step an error. Default 0.</summary>
        public double ErrorThreshold { get; set; }
        /// <summary>Column names of the fitted step scorer.</summary>
        public StepScoringColumns ScoringColumns { get; set; } = new();
    }

    private readonly MLContext _context;
    private readonly Options _options;

    internal StepDpoTrainer(MLContext context, Options options)
    {
        _context = context ?? throw new ArgumentNullException(nameof(context));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        options.CheckBaseModel();
        if (!(options.Beta > 0)) throw new ArgumentOutOfRangeException(nameof(options), "Beta must be positive.");
    }

    /// <summary>Summary of the last <see cref="Fit"/>: rows used and dropped, and the metric history.</summary>
    internal PairBuildReport? LastReport { get; private set; }
    internal List<Dictionary<string, double>> LastHistory { get; } = new();

    private IEnumerable<string> InputColumns()
    {
        yield return _options.PromptColumnName;
        if (_options.InitialReasonStepsColumnName is not null) yield return _options.InitialReasonStepsColumnName;
        yield return _options.ChosenColumnName;
        yield return _options.RejectedColumnName;
    }

    /// <summary>Checks that the input columns exist and are text, and describes the scorer's output columns.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        foreach (var name in InputColumns())
        {
            var col = inputSchema.Where(c => c.Name == name).ToList();
            if (col.Count == 0) throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Could not find input column '{name}'");
            if (col[^1].ItemType is not TextDataViewType || col[^1].Kind != SchemaShape.Column.VectorKind.Scalar)
                throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Schema mismatch for input column '{name}': expected String, got {col[^1].ItemType}");
        }
        // The fitted scorer reads prompt and solution columns, which the training data need not have.
        return inputSchema;
    }

    private void CheckSchema(DataViewSchema schema)
    {
        foreach (var name in InputColumns())
        {
            var col = schema.GetColumnOrNull(name);
            if (col is null) throw new ArgumentOutOfRangeException("inputSchema", $"Could not find input column '{name}'");
            if (col.Value.Type is not TextDataViewType)
                throw new ArgumentOutOfRangeException("inputSchema", $"Schema mismatch for input column '{name}': expected String, got {col.Value.Type}");
        }
    }

    /// <summary>Trains on the pairs in <paramref name="input"/> and returns the step scorer.</summary>
    public StepScoringTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        CheckSchema(input.Schema);
        var o = _options;
        var host = ((IHostEnvironment)_context).Register(nameof(StepDpoTrainer));
        using var ch = host.Start("Training");
        void Log(string message) => ch.Info(MessageSensitivity.None, message);

        TorchRuntime.EnsureLoaded();
        if (o.Threads is int threads) torch.set_num_threads(threads);
        int seed = o.Seed ?? host.Rand.Next();

        var rows = ReadRows(input);
        var (policy, tokenizer) = BaseModelLoader.Load(_context, o.BaseModelPath, o.BaseModel, o.BaseTokenizer);
        Qwen2ForCausalLM? reference = null;
        if (o.UseLora)
            LoraAdapters.Apply(policy, o.Lora.ToInternal());
        else
            reference = Clone(policy);

        var builder = new PreferencePairBuilder(tokenizer, o.Template, o.MaxLength, o.MaxPromptLength, o.AppendEos);
        var report = new PairBuildReport();
        var pairs = builder.Build(rows, report);
        LastReport = report;
        Log(report.ToString());
        if (pairs.Count == 0)
            throw new InvalidOperationException($"No usable training pairs: {report}");

        var model = new Qwen2TrainingModel(policy);
        ReferenceLogProbs? cache = null;
        if (o.PrecomputeReferenceLogProbs)
        {
            var refView = reference is null ? model : new Qwen2TrainingModel(reference);
            cache = ReferenceLogProbs.Compute(refView, pairs, Math.Max(1, o.BatchSize), o.PrefixSharing, cancellationToken: o.CancellationToken);
            Log($"Reference log-probs computed for {pairs.Count} pairs.");
        }
        var objective = new PreferenceObjective
        {
            Beta = o.Beta, Loss = o.Loss, LabelSmoothing = o.LabelSmoothing, NllWeight = o.NllWeight, PrefixSharing = o.PrefixSharing,
            Cache = cache, ReferenceModel = cache is null && reference is not null ? new Qwen2TrainingModel(reference) : null,
        };
        var loop = new TrainingLoop<TokenizedPair>(model, objective, o.ToLoopOptions(seed, Log));
        loop.Run(pairs);
        LastHistory.Clear();
        LastHistory.AddRange(loop.History);

        var scorer = new StepScorer(policy, reference, tokenizer, o.Template, o.Beta, o.ErrorThreshold);
        var chain = StepScoringTransformer.BuildChain(_context, scorer, o.BaseModelPath, o.ScoringColumns, out _);
        var schemaOnly = _context.Data.LoadFromEnumerable(new[] { new ScoringSchemaRow() }, SchemaFor(o.ScoringColumns));
        return new StepScoringTransformer(chain.Fit(schemaOnly), scorer);
    }

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
        var o = _options;
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
            string prefix = o.InitialReasonStepsColumnName is null ? "" : Get(k++);
            rows.Add(new PreferenceRow(prompt, prefix, Get(k++), Get(k)));
        }
        return rows;
    }

    /// <summary>An independent copy with the same weights (the frozen reference of full fine-tuning).</summary>
    internal static Qwen2ForCausalLM Clone(Qwen2ForCausalLM source)
    {
        var copy = new Qwen2ForCausalLM(source.Config, source.DType, source.Device);
        using var noGrad = torch.no_grad();
        var src = source.named_parameters().GroupBy(p => p.name).ToDictionary(g => g.Key, g => g.First().parameter);
        foreach (var (name, p) in copy.named_parameters()) p.copy_(src[name]);
        return copy;
    }
}
