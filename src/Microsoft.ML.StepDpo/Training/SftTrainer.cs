using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Text;
using TorchSharp;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// Supervised fine-tuning as an ML.NET trainer: the loss is the mean negative log-likelihood of the response
/// tokens (and EOS) after template(prompt) + separator; prompt tokens carry no labels. Returns a
/// <see cref="TextGenerationTransformer"/> that writes the model's greedy answer to a prompt. Create it with
/// <c>mlContext.StepDpo().Trainers.Sft(options)</c>; it shares the optimizer loop, checkpoints and metrics of Step-DPO.
/// </summary>
public sealed class SftTrainer : IEstimator<TextGenerationTransformer>
{
    /// <summary>Options of <see cref="SftTrainer"/>.</summary>
    public sealed class Options
    {
        /// <summary>Text column with the prompt. Default "prompt".</summary>
        public string PromptColumnName { get; set; } = "prompt";
        /// <summary>Text column with the target response. Default "response".</summary>
        public string ResponseColumnName { get; set; } = "response";
        /// <summary>Output column of the fitted transformer (the generated response). Default "GeneratedText".</summary>
        public string OutputColumnName { get; set; } = "GeneratedText";
        /// <summary>Hugging Face model folder to start from.</summary>
        public string? BaseModelPath { get; set; }
        internal Qwen2ForCausalLM? BaseModel { get; set; }
        internal ByteLevelBpeTokenizer? BaseTokenizer { get; set; }
        /// <summary>Prompt template. Default alpaca.</summary>
        public PromptTemplate Template { get; set; } = PromptTemplate.Alpaca;
        /// <summary>Peak learning rate. Default 2e-5.</summary>
        public double LearningRate { get; set; } = 2e-5;
        /// <summary>Fraction of steps of linear warmup before the cosine decay. Default 0.1.</summary>
        public double WarmupRatio { get; set; } = 0.1;
        /// <summary>AdamW weight decay (not on biases and norms). Default 0.</summary>
        public double WeightDecay { get; set; }
        /// <summary>Epochs. Default 3.</summary>
        public int Epochs { get; set; } = 3;
        /// <summary>Sequences per micro-batch. Default 8.</summary>
        public int BatchSize { get; set; } = 8;
        /// <summary>Micro-batches per optimizer step. Default 1.</summary>
        public int GradientAccumulationSteps { get; set; } = 1;
        /// <summary>Gradient clipping (global L2 norm). Default 1.0.</summary>
        public double MaxGradNorm { get; set; } = 1.0;
        /// <summary>Longest prompt + response + EOS in tokens; longer rows are left out and counted. Default 1024.</summary>
        public int MaxLength { get; set; } = 1024;
        /// <summary>Train LoRA adapters instead of all weights (merged into the fitted model). Default false.</summary>
        public bool UseLora { get; set; }
        /// <summary>LoRA settings when <see cref="UseLora"/> is on.</summary>
        public LoraSettings Lora { get; set; } = new();
        /// <summary>Most tokens the fitted transformer generates per row. Default 256.</summary>
        public int MaxNewTokens { get; set; } = 256;
        /// <summary>Torch intra-op threads; null keeps TorchSharp's default.</summary>
        public int? Threads { get; set; }
        /// <summary>Seed of the data order; null draws one from the MLContext.</summary>
        public int? Seed { get; set; }
        /// <summary>Folder for resumable checkpoints; null for none.</summary>
        public string? CheckpointDirectory { get; set; }
        /// <summary>Optimizer steps between checkpoints (0: only at the end, on cancellation and on a NaN stop). Default 0.</summary>
        public int CheckpointInterval { get; set; }
        /// <summary>Optimizer steps between metric records. Default 10.</summary>
        public int LogInterval { get; set; } = 10;
        /// <summary>Optional JSONL file for the metric records.</summary>
        public string? MetricsPath { get; set; }
        /// <summary>Receives progress after every optimizer step.</summary>
        public IProgress<TrainingProgress>? Progress { get; set; }
        /// <summary>Stops training at the next step, after saving a resumable checkpoint.</summary>
        public CancellationToken CancellationToken { get; set; }
    }

    private readonly MLContext _context;
    private readonly Options _options;

    internal SftTrainer(MLContext context, Options options)
    {
        _context = context ?? throw new ArgumentNullException(nameof(context));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if (options.BaseModelPath is null && options.BaseModel is null)
            throw new ArgumentException("Set Options.BaseModelPath to a Hugging Face model folder.", nameof(options));
        if (options.MaxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxNewTokens must be at least 1.");
    }

    /// <summary>Rows left out of the last <see cref="Fit"/> (empty response or too long).</summary>
    internal int LastDropped { get; private set; }
    internal List<Dictionary<string, double>> LastHistory { get; } = new();

    /// <summary>Checks that the prompt and response columns exist and are text; adds the output column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        foreach (var name in new[] { _options.PromptColumnName, _options.ResponseColumnName })
        {
            var col = inputSchema.Where(c => c.Name == name).ToList();
            if (col.Count == 0) throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Could not find input column '{name}'");
            if (col[^1].ItemType is not TextDataViewType || col[^1].Kind != SchemaShape.Column.VectorKind.Scalar)
                throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Schema mismatch for input column '{name}': expected String, got {col[^1].ItemType}");
        }
        return inputSchema;
    }

    /// <summary>Fine-tunes on the rows of <paramref name="input"/> and returns the generating transformer.</summary>
    public TextGenerationTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = _options;
        var cols = new[] { o.PromptColumnName, o.ResponseColumnName }.Select(n =>
        {
            var c = input.Schema.GetColumnOrNull(n) ?? throw new ArgumentOutOfRangeException("inputSchema", $"Could not find input column '{n}'");
            if (c.Type is not TextDataViewType) throw new ArgumentOutOfRangeException("inputSchema", $"Schema mismatch for input column '{n}': expected String, got {c.Type}");
            return c;
        }).ToArray();
        var host = ((IHostEnvironment)_context).Register(nameof(SftTrainer));
        using var ch = host.Start("Training");
        TorchRuntime.EnsureLoaded();
        if (o.Threads is int threads) torch.set_num_threads(threads);
        int seed = o.Seed ?? host.Rand.Next();

        var rows = new List<(string, string)>();
        using (var cursor = input.GetRowCursor(cols))
        {
            var gp = cursor.GetGetter<ReadOnlyMemory<char>>(cols[0]);
            var gr = cursor.GetGetter<ReadOnlyMemory<char>>(cols[1]);
            ReadOnlyMemory<char> p = default, r = default;
            while (cursor.MoveNext()) { gp(ref p); gr(ref r); rows.Add((p.ToString(), r.ToString())); }
        }

        var (model, tokenizer) = BaseModelLoader.Load(_context, o.BaseModelPath, o.BaseModel, o.BaseTokenizer);
        if (o.UseLora) LoraAdapters.Apply(model, o.Lora.ToInternal());

        var examples = SftData.Tokenize(rows, tokenizer, o.Template, o.MaxLength, out int dropped);
        LastDropped = dropped;
        ch.Info(MessageSensitivity.None, $"{examples.Count}/{rows.Count} rows used; {dropped} empty or longer than {o.MaxLength} tokens.");
        if (examples.Count == 0) throw new InvalidOperationException($"No usable training rows: {dropped} of {rows.Count} were empty or too long.");

        var loop = new TrainingLoop<TokenizedSequence>(new Qwen2TrainingModel(model), new SftObjective(), new TrainingLoopOptions
        {
            Epochs = o.Epochs, BatchSize = o.BatchSize, GradientAccumulationSteps = o.GradientAccumulationSteps, LearningRate = o.LearningRate,
            WarmupRatio = o.WarmupRatio, WeightDecay = o.WeightDecay, MaxGradNorm = o.MaxGradNorm, Seed = seed,
            CheckpointDirectory = o.CheckpointDirectory, CheckpointInterval = o.CheckpointInterval, LogInterval = o.LogInterval,
            MetricsPath = o.MetricsPath, Log = m => ch.Info(MessageSensitivity.None, m), Progress = o.Progress, CancellationToken = o.CancellationToken,
        });
        loop.Run(examples);
        LastHistory.Clear();
        LastHistory.AddRange(loop.History);
        if (o.UseLora) LoraAdapters.Merge(model);

        var chain = TextGenerationTransformer.BuildChain(_context, model, tokenizer, o.Template, o.MaxNewTokens, o.PromptColumnName, o.OutputColumnName);
        var schemaOnly = _context.Data.LoadFromEnumerable(new[] { new PromptRow() }, PromptSchema(o.PromptColumnName));
        return new TextGenerationTransformer(chain.Fit(schemaOnly), model, tokenizer);
    }

    private sealed class PromptRow { public string Prompt { get; set; } = ""; }

    private static SchemaDefinition PromptSchema(string column)
    {
        var def = SchemaDefinition.Create(typeof(PromptRow));
        def[nameof(PromptRow.Prompt)].ColumnName = column;
        return def;
    }
}
