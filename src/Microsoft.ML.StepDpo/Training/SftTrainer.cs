using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Scoring;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// Supervised fine-tuning as an ML.NET trainer: the loss is the mean negative log-likelihood of the response
/// tokens (and EOS) after template(prompt) + separator; prompt tokens carry no labels. Returns a
/// <see cref="TextGenerationTransformer"/> that writes the model's greedy answer to a prompt. Create it with
/// <c>mlContext.StepDpo().Trainers.Sft(options)</c>; it shares the optimizer loop, checkpoints and metrics of Step-DPO.
/// </summary>
public sealed class SftTrainer : LanguageModelTrainer<TextGenerationTransformer>
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

    private readonly Options _options;

    internal SftTrainer(MLContext context, Options options) : base(context, options)
    {
        _options = options;
        if (options.MaxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxNewTokens must be at least 1.");
    }

    private protected override string Method => "SFT";

    private protected override void CheckInputs(SchemaChecks columns)
    {
        columns.RequireText(_options.PromptColumnName);
        columns.RequireText(_options.ResponseColumnName);
    }

    // The fitted transformer adds OutputColumnName (text): the generated response.
    private protected override SchemaShape WithOutputColumns(SchemaShape inputSchema) =>
        inputSchema.WithColumnsOf<TextGenerationMapping.Output>(Context.Transforms,
            new Dictionary<string, string> { [TextGenerationMapping.TextColumn] = _options.OutputColumnName });

    private protected override TextGenerationTransformer Train(IDataView input, TrainingRun run)
    {
        var o = _options;
        var cols = new[] { input.Schema[o.PromptColumnName], input.Schema[o.ResponseColumnName] };
        var rows = new List<(string, string)>();
        using (var cursor = input.GetRowCursor(cols))
        {
            var gp = cursor.GetGetter<ReadOnlyMemory<char>>(cols[0]);
            var gr = cursor.GetGetter<ReadOnlyMemory<char>>(cols[1]);
            ReadOnlyMemory<char> p = default, r = default;
            while (cursor.MoveNext()) { gp(ref p); gr(ref r); rows.Add((p.ToString(), r.ToString())); }
        }

        var (model, tokenizer) = run.LoadBaseModel();
        var examples = SftData.Tokenize(rows, tokenizer, o.Template, o.MaxLength, out int empty, out int tooLong);
        run.CountExamples(rows.Count, examples.Count, empty, tooLong);

        run.Optimize(new Qwen2TrainingModel(model), new SftObjective(), examples);
        if (o.UseLora) LoraAdapters.Merge(model);

        var chain = TextGenerationTransformer.BuildChain(Context, model, tokenizer, o.Template, o.MaxNewTokens, o.PromptColumnName, o.OutputColumnName);
        var schemaOnly = Context.Data.LoadFromEnumerable(new[] { new PromptRow() }, PromptSchema(o.PromptColumnName));
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
