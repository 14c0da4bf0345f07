using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Answers;

/// <summary>One problem to evaluate: the question and its reference final answer.</summary>
internal sealed record EvaluationProblem(string Question, string Reference);

/// <summary>
/// Held-out accuracy the way the paper measures it: greedy decoding from the evaluation prompt (which forces the
/// step format), the final answer extracted from the solution and compared with the reference answer
/// (<see cref="AnswerExtractor"/>, <see cref="AnswerEquivalence"/>), Wilson 95% interval.
/// </summary>
internal static class GreedyAccuracy
{
    /// <param name="model">The model (put in eval mode while generating).</param>
    /// <param name="tokenizer">Its tokenizer; generation stops at its EOS id (and the config's).</param>
    /// <param name="template">Prompt format; the prompt is <see cref="PromptTemplate.BuildForEvaluation"/>.</param>
    /// <param name="problems">Problems with reference answers.</param>
    /// <param name="batchSize">Problems generated together (continuous batching: a finished problem's row is taken by the next).</param>
    /// <param name="maxNewTokens">Cap on generated tokens per solution.</param>
    /// <param name="progress">Receives the number of problems done, every <paramref name="batchSize"/> problems and at the end.</param>
    public static GreedyEvaluationResult Evaluate(Qwen2ForCausalLM model, ITextTokenizer tokenizer, PromptTemplate template,
        IReadOnlyList<EvaluationProblem> problems, int batchSize = 64, int maxNewTokens = 256, IProgress<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(problems);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "Must be at least 1.");
        if (maxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(maxNewTokens), maxNewTokens, "Must be at least 1.");

        var eos = new[] { tokenizer.EosId, model.Config.EosTokenId }.OfType<int>().Distinct().ToArray();
        // Continuous batching: up to batchSize problems decode together and a finished one's row is taken by the next
        // (greedy, so each solution is what the plain generator gives its prompt alone).
        using var generator = new ContinuousBatchGenerator(model, ids => tokenizer.Decode(ids), eos, batchSize);
        var texts = new string?[problems.Count];
        int admitted = 0, finished = 0, reported = 0;
        void Take(IEnumerable<(GenerationRow Row, GenerationResult Result)> done)
        {
            foreach (var (row, result) in done)
            {
                texts[row.Row] = result.Text;
                finished++;
            }
        }
        while (finished < problems.Count)
        {
            if (admitted < problems.Count && generator.FreeRows > 0)
            {
                int count = Math.Min(generator.FreeRows, problems.Count - admitted);
                var rows = Enumerable.Range(admitted, count)
                    .Select(i => new GenerationRow(tokenizer.Encode(template.BuildForEvaluation(problems[i].Question)), 0, 1, maxNewTokens, Array.Empty<string>(), 0, i))
                    .ToList();
                admitted += count;
                Take(generator.Admit(rows));
            }
            if (generator.Live > 0) Take(generator.Step());
            if (finished - reported >= batchSize || finished == problems.Count)
            {
                progress?.Report(finished);
                reported = finished;
            }
        }

        var solutions = new List<EvaluatedSolution>(problems.Count);
        long correct = 0;
        for (int i = 0; i < problems.Count; i++)
        {
            string solution = PromptTemplate.StepPreamble + (texts[i] ?? string.Empty);
            var (extracted, ok) = Grade(solution, problems[i].Reference);
            if (ok) correct++;
            solutions.Add(new EvaluatedSolution(problems[i].Question, problems[i].Reference, solution, extracted, ok));
        }
        return new GreedyEvaluationResult(new AnswerMetrics(problems.Count, correct), solutions);
    }

    /// <summary>The final answer of <paramref name="solution"/> and whether it matches <paramref name="reference"/>.</summary>
    public static (string Extracted, bool Correct) Grade(string solution, string reference)
    {
        string extracted = AnswerExtractor.Extract(solution);
        return (extracted, AnswerEquivalence.AreEquivalent(extracted, AnswerEquivalence.NormalizeReference(reference)));
    }
}
