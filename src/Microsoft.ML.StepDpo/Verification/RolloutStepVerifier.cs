using System.Runtime.CompilerServices;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Verification;

/// <summary>
/// Finds the first wrong step by Monte-Carlo rollouts (Math-Shepherd's estimate) with OmegaPRM's binary search:
/// from the prefix that ends after step j, sample N completions; the prefix "can still reach" the reference answer
/// when at least one does. The first error is the first step whose prefix can no longer reach it, right after one
/// that could. Binary search over j costs about N·log2(steps) rollouts.
/// </summary>
/// <remarks>
/// Verdicts: steps up to the last prefix that reached the answer are <see cref="StepVerdict.Correct"/> (in the
/// Math-Shepherd sense: the answer is still reachable), the first error is <see cref="StepVerdict.Incorrect"/>, later
/// steps <see cref="StepVerdict.Unknown"/>. Everything is Unknown when there is no reference answer, when the
/// solution's own final answer is right (no rollouts are spent), when no rollout reaches the answer even from the
/// problem alone (the generator cannot solve it, so the estimates say nothing), or when the generator fails.
/// The search assumes reachability only falls along the solution (a prefix that can reach the answer implies its
/// own prefixes can); the cost is at most N·ceil(log2(steps)) + N rollouts.
/// </remarks>
public sealed class RolloutStepVerifier : IStepVerifier
{
    private readonly ICompletionSource _source;
    private readonly StrongBox<long> _rollouts; // shared with the pipeline's copies (ForPipeline)

    /// <summary>Creates the verifier.</summary>
    /// <param name="source">The generator of rollouts: the policy model, locally or behind an endpoint.</param>
    /// <param name="rolloutsPerPrefix">N, completions sampled per examined prefix. Default 8.</param>
    /// <param name="sampling">How rollouts are sampled. Default temperature 0.8, top-p 0.95, 512 new tokens.</param>
    public RolloutStepVerifier(ICompletionSource source, int rolloutsPerPrefix = 8, SamplingSettings? sampling = null)
    {
        _source = source ?? throw new ArgumentNullException(nameof(source));
        if (rolloutsPerPrefix < 1) throw new ArgumentOutOfRangeException(nameof(rolloutsPerPrefix), rolloutsPerPrefix, "Must be at least 1.");
        RolloutsPerPrefix = rolloutsPerPrefix;
        Sampling = sampling ?? new SamplingSettings();
        Sampling.Validate();
        _rollouts = new StrongBox<long>();
    }

    private RolloutStepVerifier(RolloutStepVerifier original, RolloutCache cache)
    {
        _source = original._source;
        _rollouts = original._rollouts;
        RolloutsPerPrefix = original.RolloutsPerPrefix;
        Sampling = original.Sampling;
        Cache = cache;
        ThrowOnFailure = true;
    }

    /// <summary>
    /// This verifier as the preference pipeline runs it, leaving this instance unchanged: failures propagate and outcomes
    /// are kept in <paramref name="cache"/> (rectification reuses them). Its rollouts count in this verifier's <see cref="RolloutsUsed"/>.
    /// </summary>
    internal RolloutStepVerifier ForPipeline(RolloutCache cache) => new(this, cache);

    /// <summary>"rollout".</summary>
    public string Name => "rollout";

    /// <summary>N, completions sampled per examined prefix.</summary>
    public int RolloutsPerPrefix { get; }

    /// <summary>How rollouts are sampled.</summary>
    public SamplingSettings Sampling { get; }

    /// <summary>Rollouts drawn so far by this verifier (over all calls).</summary>
    public long RolloutsUsed => Interlocked.Read(ref _rollouts.Value);

    /// <summary>When set, outcomes are stored and reused per (problem, prefix); the pipeline reads rectification candidates from it.</summary>
    internal RolloutCache? Cache { get; init; }

    /// <summary>Let generator failures propagate instead of answering Unknown (the pipeline redoes the problem on resume rather than record a degraded result).</summary>
    internal bool ThrowOnFailure { get; init; }

    /// <summary>The most rollouts one solution of <paramref name="steps"/> steps can cost: N·ceil(log2(steps)) + N.</summary>
    public int MaxRolloutsFor(int steps) => steps <= 0 ? 0 : RolloutsPerPrefix * ((int)Math.Ceiling(Math.Log2(steps)) + 1);

    /// <inheritdoc/>
    public async Task<IReadOnlyList<StepCheck>> VerifyAsync(StepVerificationInput input, CancellationToken cancellationToken = default)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        int n = input.Steps.Count;
        StepCheck[] All(string evidence) => Enumerable.Repeat(new StepCheck(StepVerdict.Unknown, evidence), n).ToArray();
        if (n == 0) return Array.Empty<StepCheck>();
        if (string.IsNullOrWhiteSpace(input.ReferenceAnswer))
            return All("rollouts need a reference answer");
        if (AnswerEquivalence.IsCorrect(SolutionText.Full(input.Steps), input.ReferenceAnswer))
            return All("the solution reaches the reference answer");

        // reach[j]: successful rollouts out of N from the prefix ending after step j (null = not examined).
        // The whole solution (j = n) is its own rollout and misses the answer.
        var reach = new int?[n + 1];
        reach[n] = 0;
        int lo = 0, hi = n;
        try
        {
            while (hi - lo > 1)
            {
                int mid = (lo + hi) / 2;
                reach[mid] = await EstimateAsync(input, mid, cancellationToken).ConfigureAwait(false);
                if (reach[mid] > 0) lo = mid; else hi = mid;
            }
            if (lo == 0)
            {
                reach[0] = await EstimateAsync(input, 0, cancellationToken).ConfigureAwait(false);
                if (reach[0] == 0)
                    return All($"no rollout from the problem alone reaches the answer (0/{RolloutsPerPrefix})");
            }
        }
        catch (Exception e) when (!ThrowOnFailure && (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested))
        {
            return All($"rollouts failed: {e.Message}");
        }

        var checks = new StepCheck[n];
        for (int i = 1; i <= n; i++)
        {
            checks[i - 1] = i <= lo
                ? new StepCheck(StepVerdict.Correct, reach[i] is int r
                    ? $"{r}/{RolloutsPerPrefix} rollouts after step {i} reach the answer"
                    : $"a later prefix (after step {lo}) still reaches the answer")
                : i == hi
                    ? new StepCheck(StepVerdict.Incorrect, i == n
                        ? $"the solution misses the answer; {reach[lo]}/{RolloutsPerPrefix} rollouts before this step reach it"
                        : $"0/{RolloutsPerPrefix} rollouts after this step reach the answer; {reach[lo]}/{RolloutsPerPrefix} before it do")
                    : StepCheck.Unknown;
        }
        return checks;
    }

    /// <summary>Successful rollouts out of N from the prefix that ends after <paramref name="completeSteps"/> steps.</summary>
    private async Task<int> EstimateAsync(StepVerificationInput input, int completeSteps, CancellationToken cancellationToken)
    {
        string prefix = SolutionText.PrefixBefore(input.Steps, completeSteps + 1);
        var outcome = await RolloutsAsync(input.Problem, prefix, input.ReferenceAnswer!, cancellationToken).ConfigureAwait(false);
        return outcome.Successful.Count;
    }

    /// <summary>
    /// The N rollouts from <paramref name="prefix"/> and those that reach the answer: drawn once per (problem, prefix)
    /// where this verifier has a <see cref="Cache"/>, and the same whoever asks first (the seed is a function of the
    /// problem and the prefix; different problems' rollouts never share a random stream).
    /// </summary>
    internal Task<RolloutOutcome> RolloutsAsync(string problem, string prefix, string referenceAnswer, CancellationToken cancellationToken)
    {
        async Task<RolloutOutcome> Draw()
        {
            var request = new CompletionRequest(problem, prefix, RolloutsPerPrefix,
                Sampling with { Seed = Sampling.Seed + (long)(StableHash.Fnv1a64(problem + "\n" + prefix) & 0x7fffffffffffL) });
            var rollouts = await _source.CompleteAsync(request, cancellationToken).ConfigureAwait(false);
            Interlocked.Add(ref _rollouts.Value, rollouts.Count);
            return new RolloutOutcome(rollouts.Count, rollouts.Where(r => AnswerEquivalence.IsCorrect(prefix + r, referenceAnswer)).ToList());
        }
        return Cache is null ? Draw() : Cache.GetOrDraw(problem, prefix, Draw);
    }
}
