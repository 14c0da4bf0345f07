using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo;

/// <summary>Greedy held-out accuracy of a model folder on <c>mlContext.StepDpo()</c>.</summary>
public static class GreedyEvaluationCatalogExtensions
{
    /// <summary>
    /// Held-out accuracy of a model the way the paper measures it: for each problem, greedy decoding from
    /// <see cref="PromptTemplate.BuildForEvaluation"/> (which opens the answer with
    /// <see cref="PromptTemplate.StepPreamble"/>), up to EOS or <paramref name="maxNewTokens"/>; the final answer is
    /// extracted from the solution and compared with the reference as in
    /// <see cref="TextCatalogExtensions.Evaluate"/>, with the Wilson 95% interval.
    /// </summary>
    /// <param name="catalog">The Step-DPO catalog; its context chooses the device (<see cref="MLContext.GpuDeviceId"/>).</param>
    /// <param name="modelDirectory">Hugging Face model folder (config.json, model.safetensors, tokenizer.json), for example
    /// one written by <see cref="Scoring.StepScoringTransformer.SavePolicy"/>.</param>
    /// <param name="problems">Text columns with each problem and its reference final answer.</param>
    /// <param name="template">The model's prompt format.</param>
    /// <param name="problemColumnName">Problem column. Default "Problem".</param>
    /// <param name="referenceColumnName">Reference answer column. Default "Answer".</param>
    /// <param name="maxNewTokens">Most tokens generated per solution. Default 256.</param>
    /// <param name="batchSize">Problems generated together. Default 64.</param>
    /// <param name="progress">Receives the number of problems done after each batch.</param>
    /// <returns>The metrics and every graded solution, in the order of <paramref name="problems"/>.</returns>
    public static GreedyEvaluationResult EvaluateGreedy(this StepDpoCatalog catalog, string modelDirectory, IDataView problems, PromptTemplate template,
        string problemColumnName = "Problem", string referenceColumnName = "Answer", int maxNewTokens = 256, int batchSize = 64, IProgress<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrWhiteSpace(modelDirectory);
        ArgumentNullException.ThrowIfNull(problems);
        ArgumentNullException.ThrowIfNull(template);
        if (!Directory.Exists(modelDirectory)) throw new DirectoryNotFoundException($"Model folder '{modelDirectory}' does not exist.");
        var items = ReadProblems(problems, problemColumnName, referenceColumnName);
        TorchRuntime.EnsureLoaded();
        var (model, tokenizer) = ModelFolder.Load(modelDirectory, device: TorchDevice.Select(catalog.Context));
        using var _ = model;
        return GreedyAccuracy.Evaluate(model, tokenizer, template, items, batchSize, maxNewTokens, progress);
    }

    private static List<EvaluationProblem> ReadProblems(IDataView data, string problemColumnName, string referenceColumnName)
    {
        var problem = TextColumn(data.Schema, problemColumnName);
        var reference = TextColumn(data.Schema, referenceColumnName);
        var items = new List<EvaluationProblem>();
        using var cursor = data.GetRowCursor(new[] { problem, reference });
        var getProblem = cursor.GetGetter<ReadOnlyMemory<char>>(problem);
        var getReference = cursor.GetGetter<ReadOnlyMemory<char>>(reference);
        ReadOnlyMemory<char> p = default, r = default;
        while (cursor.MoveNext())
        {
            getProblem(ref p);
            getReference(ref r);
            items.Add(new EvaluationProblem(p.ToString(), r.ToString()));
        }
        return items;
    }

    private static DataViewSchema.Column TextColumn(DataViewSchema schema, string name)
    {
        var col = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException("inputSchema", $"Could not find input column '{name}'");
        if (col.Type is not TextDataViewType)
            throw new ArgumentOutOfRangeException("inputSchema", $"Schema mismatch for input column '{name}': expected String, got {col.Type}");
        return col;
    }
}
