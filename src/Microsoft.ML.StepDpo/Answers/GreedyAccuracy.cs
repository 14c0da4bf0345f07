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
    /// <param name="batchSize">Problems generated together.</param>
    /// <param name="maxNewTokens">Cap on generated tokens per solution.</param>
    /// <param name="progress">Receives the number of problems done after each batch.</param>
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
        var options = new GenerationOptions { MaxNewTokens = maxNewTokens, Temperature = 0, EosIds = eos };
        var generator = new TextGenerator(model, ids => tokenizer.Decode(ids));
        var solutions = new List<EvaluatedSolution>(problems.Count);
        long correct = 0;
        for (int start = 0; start < problems.Count; start += batchSize)
        {
            var batch = problems.Skip(start).Take(batchSize).ToList();
            var prompts = batch.Select(p => tokenizer.Encode(template.BuildForEvaluation(p.Question))).ToList();
            var results = generator.Generate(prompts, options);
            for (int i = 0; i < batch.Count; i++)
            {
                string solution = PromptTemplate.StepPreamble + (results[i].Text ?? string.Empty);
                var (extracted, ok) = Grade(solution, batch[i].Reference);
                if (ok) correct++;
                solutions.Add(new EvaluatedSolution(batch[i].Question, batch[i].Reference, solution, extracted, ok));
            }
            progress?.Report(solutions.Count);
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
