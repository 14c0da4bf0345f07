using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>Per-step implicit rewards of one solution.</summary>
/// <param name="Steps">The step texts as segmented.</param>
/// <param name="Rewards">β·(log πθ(step|context) − log πref(step|context)) per step.</param>
/// <param name="FirstErrorStep">1-based index of the first scored step whose reward is below the threshold; -1 if none.</param>
internal sealed record StepScores(IReadOnlyList<string> Steps, float[] Rewards, int FirstErrorStep)
{
    /// <summary>The sum of the scored steps' rewards (steps beyond the model's context, NaN, are left out).</summary>
    public float Total => Rewards.Where(r => !float.IsNaN(r)).Sum();

    /// <summary>Steps beyond the model's context: their reward is NaN.</summary>
    public int UnscoredSteps { get; init; }
}

/// <summary>
/// Scores a solution step by step with a Step-DPO policy and its reference model πref. The context of step k is
/// template(prompt) + separator + the solution up to step k's text (so it ends with "Step k:" when the
/// solution uses markers); the step is the text that follows, as in Math-Step-DPO-10K rows. All steps are
/// read off one forward pass per model over the whole solution: a causal model's log-prob of step k given
/// its context is the same inside the longer sequence. Where BPE merges across a step boundary so that the
/// joint tokenization is not a prefix of the whole one, that step is computed on its own sequence instead.
/// The work per row is linear in its length and bounded by the model's context (<see cref="ContextLength"/>).
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
        ModelFolder.CheckVocabulary(policy.Config.VocabSize, tokenizer, "(the step scorer's policy)", "(the step scorer's)");
        if (reference is not null) ModelFolder.CheckVocabulary(reference.Config.VocabSize, tokenizer, "(the step scorer's reference)", "(the step scorer's)");
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

    /// <summary>
    /// A row is read up to the model's context: at most <see cref="ContextLength"/> tokens, and at most this many
    /// characters per token of it (so a row of millions of characters is never tokenized whole).
    /// </summary>
    internal const int CharsPerContextToken = 16;

    /// <summary>
    /// The longest sequence the scorer runs: the smaller <c>max_position_embeddings</c> of the policy and the reference.
    /// A step whose context + text does not fit (and every step after it) gets no reward: NaN in the rewards, left out
    /// of the total and of the first-error search, and counted in <see cref="StepScores.UnscoredSteps"/>; with
    /// <see cref="FailBeyondContext"/> the row fails instead.
    /// </summary>
    public int ContextLength => Math.Min(_policy.Config.MaxPositionEmbeddings, _reference?.Config.MaxPositionEmbeddings ?? int.MaxValue);

    /// <summary>Throw instead of leaving steps beyond <see cref="ContextLength"/> unscored. Default false.</summary>
    public bool FailBeyondContext { get; set; }

    private long _encodedChars, _forwardPasses, _forwardPositions, _longestForward;

    /// <summary>
    /// Work counters (tests): characters given to the tokenizer; forward calls, the positions they ran (both models
    /// together) and the most positions of one call.
    /// </summary>
    internal (long EncodedChars, long ForwardPasses, long ForwardPositions, long LongestForward) Work =>
        (Interlocked.Read(ref _encodedChars), Interlocked.Read(ref _forwardPasses), Interlocked.Read(ref _forwardPositions), Interlocked.Read(ref _longestForward));

    private void CountChars(int n) => Interlocked.Add(ref _encodedChars, n);

    /// <summary>Where each step's context ends (<c>Cut</c>) and its text ends (<c>End</c>) in the solution.</summary>
    internal static List<(int Cut, int End, string Text)> Cuts(string solution)
    {
        var result = new List<(int, int, string)>();
        var steps = StepSegmentation.Segment(solution, s_segmentation);
        for (int k = 0; k < steps.Count; k++)
        {
            int start = steps[k].Offset;
            // The context ends right after the marker ("Step k:"); the space belongs to the step, as in the data.
            int cut = start;
            while (cut > 0 && (solution[cut - 1] == ' ' || solution[cut - 1] == '\t')) cut--;
            // The step runs to the end of its text; the newline and the next marker belong to the next context.
            int stepEnd = k + 1 == steps.Count ? Math.Max(solution.TrimEnd().Length, start) : start + steps[k].Text.Length;
            result.Add((cut, stepEnd, steps[k].Text));
        }
        return result;
    }

    /// <summary>Splits a solution into (context text, step text) pairs, one per step.</summary>
    internal List<(string Context, string Step, string Text)> Split(string prompt, string solution) =>
        Cuts(solution).Select(c => (Template.Build(prompt, solution[..c.Cut]), solution[c.Cut..c.End], c.Text)).ToList();

    public StepScores Score(string prompt, string solution)
    {
        prompt ??= string.Empty;
        solution ??= string.Empty;
        var cuts = Cuts(solution);
        if (cuts.Count == 0) return new StepScores(Array.Empty<string>(), Array.Empty<float>(), -1);

        int limit = ContextLength;
        var spans = StepSpans(prompt, solution, cuts, limit);
        int unscored = spans.Count(s => s is null);
        if (unscored > 0 && FailBeyondContext)
            throw new InvalidOperationException(
                $"The solution does not fit the model's context of {limit} tokens: steps {cuts.Count - unscored + 1} to {cuts.Count} of {cuts.Count} are beyond it.");

        var rewards = new float[cuts.Count];
        lock (_lock)
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var policy = LogProbs(_policy, spans, adaptersOn: true);
            var reference = LogProbs(_reference ?? _policy, spans, adaptersOn: _reference is not null);
            for (int k = 0; k < spans.Count; k++)
            {
                if (spans[k] is not var (ids, s, e))
                {
                    rewards[k] = float.NaN;
                    continue;
                }
                var (lpPolicy, lpReference) = (policy[ids], reference[ids]);
                double sum = 0;
                for (int j = Math.Max(1, s); j < e; j++) sum += lpPolicy[j] - lpReference[j];
                rewards[k] = (float)(Beta * sum);
            }
        }
        int first = -1;
        for (int k = 0; k < rewards.Length; k++)
            if (rewards[k] < Threshold) { first = k + 1; break; }
        return new StepScores(cuts.Select(c => c.Text).ToList(), rewards, first) { UnscoredSteps = unscored };
    }

    /// <summary>
    /// For each step, the token sequence that holds it and its span there, or null when it is beyond the context. The
    /// sequence is the joint tokenization of the whole row (one array shared by the steps it holds as a prefix) or,
    /// where BPE merges across a step boundary, the step's own context + step tokens; the span starts where the joint
    /// tokens of context + step stop agreeing with those of the context alone (see PromptResponseSeam). Each step costs
    /// the tokenization of its last line (see <see cref="PrefixTokenizer"/>), so the row costs one pass over its text.
    /// </summary>
    internal List<(int[] Ids, int Start, int End)?> StepSpans(string prompt, string solution, List<(int Cut, int End, string Text)> cuts, int limit)
    {
        if (cuts.Count == 0) return new();
        string filled = Template.Fill(prompt);
        string head = filled + Template.Separator;
        // Every context with a non-empty solution prefix is head + solution[..cut]: all prefixes of one text.
        string text = head + solution[..cuts[^1].End];
        int maxChars = (int)Math.Min(int.MaxValue, (long)limit * CharsPerContextToken);
        var lines = new PrefixTokenizer(_tokenizer, text, limit, maxChars, CountChars);
        if (!lines.IsExact)
            return WholePrefixSpans(prompt, solution, cuts, limit, maxChars);

        int[] full = lines.Ids.Count <= limit ? lines.Ids.ToArray() : lines.Ids.GetRange(0, limit).ToArray();
        var ids = lines.Ids;
        var result = new List<(int[], int, int)?>(cuts.Count);
        bool beyond = false;
        foreach (var (cut, end, _) in cuts)
        {
            if (beyond)
            {
                result.Add(null);
                continue;
            }
            int[]? joint = null;
            int promptLength, jointLength;
            bool isPrefix;
            if (cut == 0)
            {
                // The context is the filled template alone (no separator): not a prefix of the row's text.
                if (filled.Length + end > maxChars) { beyond = true; result.Add(null); continue; }
                CountChars(2 * filled.Length + end);
                var (p, r) = _tokenizer.TokenizeSeam(filled, solution[..end]);
                joint = p.Concat(r).ToArray();
                promptLength = p.Length;
                jointLength = joint.Length;
                isPrefix = jointLength <= ids.Count && joint.AsSpan().SequenceEqual(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ids)[..jointLength]);
            }
            else
            {
                int contextEnd = head.Length + cut, jointEnd = head.Length + end;
                if (jointEnd > lines.CoveredChars) { beyond = true; result.Add(null); continue; }
                var (leadJ, tailJ) = lines.Prefix(jointEnd);
                jointLength = leadJ + tailJ.Length;
                if (jointLength > limit) { beyond = true; result.Add(null); continue; }
                var (leadC, tailC) = lines.Prefix(contextEnd);
                // Context tokens: ids[..leadC] + tailC; joint tokens: ids[..leadJ] + tailJ, with leadC ≤ leadJ.
                int common = 0;
                while (common < tailC.Length && leadC + common < jointLength
                       && tailC[common] == (leadC + common < leadJ ? ids[leadC + common] : tailJ[leadC + common - leadJ]))
                    common++;
                promptLength = leadC + common;
                isPrefix = jointLength <= ids.Count && System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ids).Slice(leadJ, tailJ.Length).SequenceEqual(tailJ);
                if (!isPrefix)
                    joint = ids.GetRange(0, leadJ).Concat(tailJ).ToArray();
            }
            if (jointLength > limit) { beyond = true; result.Add(null); continue; }
            result.Add(isPrefix ? (full, promptLength, jointLength) : (joint!, promptLength, jointLength));
        }
        return result;
    }

    /// <summary>The spans from whole-prefix tokenizations, for a tokenizer whose lines do not tokenize on their own.</summary>
    private List<(int[] Ids, int Start, int End)?> WholePrefixSpans(string prompt, string solution, List<(int Cut, int End, string Text)> cuts, int limit, int maxChars)
    {
        var result = new List<(int[], int, int)?>(cuts.Count);
        string Context(int cut) => Template.Build(prompt, solution[..cut]);
        var last = cuts[^1];
        string lastText = Context(last.Cut) + solution[last.Cut..last.End];
        int[] fullIds = lastText.Length <= maxChars ? Encode(lastText) : Encode(lastText[..maxChars]);
        int[] full = fullIds.Length <= limit ? fullIds : fullIds[..limit];
        bool beyond = false;
        foreach (var (cut, end, _) in cuts)
        {
            string context = Context(cut);
            if (beyond || context.Length + end - cut > maxChars) { beyond = true; result.Add(null); continue; }
            CountChars(2 * context.Length + end - cut);
            var (p, r) = _tokenizer.TokenizeSeam(context, solution[cut..end]);
            var joint = p.Concat(r).ToArray();
            if (joint.Length > limit) { beyond = true; result.Add(null); continue; }
            bool isPrefix = joint.Length <= fullIds.Length && joint.AsSpan().SequenceEqual(fullIds.AsSpan(0, joint.Length));
            result.Add(isPrefix ? (full, p.Length, joint.Length) : (joint, p.Length, joint.Length));
        }
        return result;

        int[] Encode(string t)
        {
            CountChars(t.Length);
            return ((ITextTokenizer)_tokenizer).Encode(t);
        }
    }

    /// <summary>
    /// log p(ids[j] | ids[&lt;j]) (j ≥ 1, index 0 unused) of every sequence the spans use: the row's shared sequence
    /// (the longest) runs once and each step's own sequence only from where it leaves it (see <see cref="SharedPrefixLogProbs"/>).
    /// </summary>
    private Dictionary<int[], double[]> LogProbs(Qwen2ForCausalLM model, List<(int[] Ids, int Start, int End)?> spans, bool adaptersOn)
    {
        using var disabled = adaptersOn || !LoraAdapters.HasAdapters(model) ? null : LoraAdapters.Disable(model);
        var result = new Dictionary<int[], double[]>(ReferenceEqualityComparer.Instance);
        var sequences = spans.Where(s => s is not null).Select(s => s!.Value.Ids).Distinct(ReferenceEqualityComparer.Instance).Cast<int[]>().ToList();
        if (sequences.Count == 0) return result;
        int[] shared = sequences.MaxBy(s => s.Length)!;
        var branches = new List<int[]>();
        foreach (var ids in sequences)
        {
            if (ReferenceEquals(ids, shared)) continue;
            if (ids.Length > 0 && shared.Length > 0 && ids[0] == shared[0]) branches.Add(ids);
            else result[ids] = SharedPrefixLogProbs.Compute(model, ids, Array.Empty<(int[], int)>(), CountForward).Shared;
        }
        var (lpShared, lpBranches) = SharedPrefixLogProbs.Compute(model, shared,
            branches.Select(b => (b, Math.Min(b.AsSpan().CommonPrefixLength(shared), b.Length - 1))).ToList(), CountForward);
        result[shared] = lpShared;
        for (int i = 0; i < branches.Count; i++) result[branches[i]] = lpBranches[i];
        return result;
    }

    private void CountForward(int positions)
    {
        Interlocked.Increment(ref _forwardPasses);
        Interlocked.Add(ref _forwardPositions, positions);
        if (positions > Interlocked.Read(ref _longestForward)) Interlocked.Exchange(ref _longestForward, positions);
    }

    public void Dispose()
    {
        _policy.Dispose();
        _reference?.Dispose();
    }
}
