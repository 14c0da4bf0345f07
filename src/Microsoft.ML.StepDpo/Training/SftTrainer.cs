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
    public sealed class Options : LanguageModelTrainerOptions
    {
        /// <summary>Defaults: learning rate 2e-5, 3 epochs.</summary>
        public Options() : base(learningRate: 2e-5, epochs: 3) { }

        /// <summary>Text column with the prompt. Default "prompt".</summary>
        public string PromptColumnName { get; set; } = "prompt";
        /// <summary>Text column with the target response. Default "response".</summary>
        public string ResponseColumnName { get; set; } = "response";
        /// <summary>Output column of the fitted transformer (the generated response). Default "GeneratedText".</summary>
        public string OutputColumnName { get; set; } = "GeneratedText";
        /// <summary>Most tokens the fitted transformer generates per row. Default 256.</summary>
        public int MaxNewTokens { get; set; } = 256;
    }

    private readonly MLContext _context;
    private readonly Options _options;

    internal SftTrainer(MLContext context, Options options)
    {
        _context = context ?? throw new ArgumentNullException(nameof(context));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        options.CheckBaseModel();
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

        var loop = new TrainingLoop<TokenizedSequence>(new Qwen2TrainingModel(model), new SftObjective(), o.ToLoopOptions(seed, m => ch.Info(MessageSensitivity.None, m)));
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
