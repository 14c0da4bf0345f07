using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>Per-step implicit rewards of one solution.</summary>
/// <param name="Steps">The step texts as segmented.</param>
/// <param name="Rewards">β·(log πθ(step|context) − log πref(step|context)) per step.</param>
/// <param name="FirstErrorStep">1-based index of the first step whose reward is below the threshold; -1 if none.</param>
internal sealed record StepScores(IReadOnlyList<string> Steps, float[] Rewards, int FirstErrorStep)
{
    public float Total => Rewards.Sum();
}

/// <summary>
/// Scores a solution step by step with a Step-DPO policy and its reference model πref. The context of step k is
/// template(prompt) + separator + the solution up to step k's text (so it ends with "Step k:" when the
/// solution uses markers); the step is the text that follows, as in Math-Step-DPO-10K rows. All steps are
/// read off one forward pass per model over the whole solution: a causal model's log-prob of step k given
/// its context is the same inside the longer sequence. Where BPE merges across a step boundary so that the
/// joint tokenization is not a prefix of the whole one, that step is computed on its own sequence instead.
/// </summary>
internal sealed class StepScorer : IDisposable
{
    private readonly Qwen2ForCausalLM _policy;
    private readonly Qwen2ForCausalLM? _reference; // null: LoRA policy, πref = the policy with adapters disabled
    private readonly ByteLevelBpeTokenizer _tokenizer;
    private readonly object _lock = new();
    private static readonly SegmentationSettings s_segmentation = new() { Mode = SegmentationMode.Auto, AnswerLine = AnswerLineHandling.KeepInLastStep };

    public StepScorer(Qwen2ForCausalLM policy, Qwen2ForCausalLM? reference, ByteLevelBpeTokenizer tokenizer, PromptTemplate template, double beta, double threshold)
    {
        _policy = policy ?? throw new ArgumentNullException(nameof(policy));
        _reference = reference;
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        Template = template ?? throw new ArgumentNullException(nameof(template));
        if (!(beta > 0)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "β must be positive.");
        if (reference is null && !LoraAdapters.HasAdapters(policy))
            throw new ArgumentException("Without LoRA adapters on the policy, a separate reference model is needed.", nameof(reference));
        Beta = beta;
        Threshold = threshold;
        _policy.eval();
        _reference?.eval();
    }

    public PromptTemplate Template { get; }
    public double Beta { get; }
    public double Threshold { get; }
    public Qwen2ForCausalLM Policy => _policy;
    public Qwen2ForCausalLM? Reference => _reference;
    public ByteLevelBpeTokenizer Tokenizer => _tokenizer;

    /// <summary>Splits a solution into (context text, step text) pairs, one per step.</summary>
    internal List<(string Context, string Step, string Text)> Split(string prompt, string solution)
    {
        var result = new List<(string, string, string)>();
        var steps = StepSegmentation.Segment(solution, s_segmentation);
        for (int k = 0; k < steps.Count; k++)
        {
            int start = steps[k].Offset;
            // The context ends right after the marker ("Step k:"); the space belongs to the step, as in the data.
            int cut = start;
            while (cut > 0 && (solution[cut - 1] == ' ' || solution[cut - 1] == '\t')) cut--;
            // The step runs to the end of its text; the newline and the next marker belong to the next context.
            int stepEnd = k + 1 == steps.Count ? Math.Max(solution.TrimEnd().Length, start) : start + steps[k].Text.Length;
            string context = Template.Build(prompt, solution[..cut]);
            result.Add((context, solution[cut..stepEnd], steps[k].Text));
        }
        return result;
    }

    public StepScores Score(string prompt, string solution)
    {
        prompt ??= string.Empty;
        solution ??= string.Empty;
        var parts = Split(prompt, solution);
        if (parts.Count == 0) return new StepScores(Array.Empty<string>(), Array.Empty<float>(), -1);

        // Token spans of every step inside the joint tokenization of the last context + step.
        var last = parts[^1];
        var fullIds = ((ITextTokenizer)_tokenizer).Encode(last.Context + last.Step);
        var spans = new List<(int[] Ids, int Start, int End)>(); // ids of the sequence holding the step, and its span
        foreach (var (context, step, _) in parts)
        {
            var (p, r) = _tokenizer.TokenizeSeam(context, step);
            var joint = p.Concat(r).ToArray();
            bool isPrefix = joint.Length <= fullIds.Length && joint.AsSpan().SequenceEqual(fullIds.AsSpan(0, joint.Length));
            spans.Add(isPrefix ? (fullIds, p.Length, joint.Length) : (joint, p.Length, joint.Length));
        }

        var rewards = new float[parts.Count];
        lock (_lock)
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var cache = new Dictionary<int[], (double[] Policy, double[] Reference)>(ReferenceEqualityComparer.Instance);
            for (int k = 0; k < spans.Count; k++)
            {
                var (ids, s, e) = spans[k];
                if (!cache.TryGetValue(ids, out var lp))
                {
                    lp = (TokenLogProbs(_policy, ids, adaptersOn: true), TokenLogProbs(_reference ?? _policy, ids, adaptersOn: _reference is not null));
                    cache[ids] = lp;
                }
                double sum = 0;
                for (int j = Math.Max(1, s); j < e; j++) sum += lp.Policy[j] - lp.Reference[j];
                rewards[k] = (float)(Beta * sum);
            }
        }
        int first = -1;
        for (int k = 0; k < rewards.Length; k++)
            if (rewards[k] < Threshold) { first = k + 1; break; }
        return new StepScores(parts.Select(p => p.Text).ToList(), rewards, first);
    }

    /// <summary>log p(ids[j] | ids[&lt;j]) for j ≥ 1 (index 0 unused), in double.</summary>
    private static double[] TokenLogProbs(Qwen2ForCausalLM model, int[] ids, bool adaptersOn)
    {
        var result = new double[ids.Length];
        if (ids.Length < 2) return result;
        using var scope = torch.NewDisposeScope();
        using var disabled = adaptersOn || !LoraAdapters.HasAdapters(model) ? null : LoraAdapters.Disable(model);
        var input = torch.tensor(ids.Select(i => (long)i).ToArray(), device: model.Device).unsqueeze(0);
        var hidden = model.Hidden(input[.., ..^1], null, null);
        var logp = Qwen2ForCausalLM.GatherLogProbs(model.Logits(hidden), input[.., 1..]);
        var values = logp.to(ScalarType.Float64).cpu().data<double>().ToArray();
        Array.Copy(values, 0, result, 1, values.Length);
        return result;
    }

    public void Dispose()
    {
        _policy.Dispose();
        _reference?.Dispose();
    }
}
