using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Verification;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Data;

namespace Microsoft.ML.StepDpo.Pipeline;

/// <summary>One problem to build preferences from.</summary>
internal sealed record ProblemInput(string Id, string Problem, string Answer);

/// <summary>
/// The Step-DPO data pipeline: error collection, first-error localization, rectification (paper §3.2), plus
/// answer-level pairs from the same samples. Problems run concurrently and are committed in input order; output is
/// resumable (<see cref="ResumableOutput"/>).
/// </summary>
internal sealed class StepPreferenceBuilder
{
    private readonly StepPreferenceOptions _options;
    private readonly ICompletionSource _policy;
    private readonly FirstErrorLocator _locator;
    private readonly List<RolloutStepVerifier> _rolloutVerifiers;
    private readonly SegmentationSettings _segmentation;
    private readonly List<ArithmeticStepVerifier> _chosenChecks;

    public StepPreferenceBuilder(StepPreferenceOptions options)
    {
        options.Validate();
        _options = options;
        _policy = options.Policy!;
        var given = options.Verifiers?.ToList() ?? new List<IStepVerifier>
        {
            new ArithmeticStepVerifier(),
            new RolloutStepVerifier(_policy, options.RolloutsPerPrefix, options.Sampling with { Seed = options.Seed }),
        };
        // This run's copies, so the caller's verifiers stay as they were: rollout verifiers keep their successful
        // rollouts (they are rectification candidates), and a failed request of a rollout or judge verifier stops the
        // problem (redone on resume) rather than being recorded as "no error found".
        var verifiers = given.Select(v => v switch
        {
            RolloutStepVerifier r => r.ForPipeline(new RolloutCache()),
            JudgeStepVerifier j => j.ForPipeline(),
            _ => v,
        }).ToList();
        _rolloutVerifiers = verifiers.OfType<RolloutStepVerifier>().ToList();
        _locator = new FirstErrorLocator(verifiers, options.NeutralIsError);
        _chosenChecks = options.VerifyChosen ? verifiers.OfType<ArithmeticStepVerifier>().ToList() : new List<ArithmeticStepVerifier>();
        _segmentation = new SegmentationSettings { Mode = options.Segmentation, AnswerLine = AnswerLineHandling.KeepInLastStep };
        if (options.Segmentation == SegmentationMode.CustomPattern)
            throw new ArgumentException("The pipeline does not support SegmentationMode.CustomPattern.", nameof(options));
    }

    /// <summary>The problems of a data view (problem, answer, optional id columns).</summary>
    public static List<ProblemInput> ReadProblems(IDataView data, StepPreferenceOptions options)
    {
        var names = new List<string> { options.ProblemColumnName, options.AnswerColumnName };
        if (options.IdColumnName is { Length: > 0 } idName) names.Add(idName);
        var columns = names.Select(n => SchemaChecks.TextColumn(data.Schema, n)).ToList();

        var problems = new List<ProblemInput>();
        using var cursor = data.GetRowCursor(columns);
        var getters = columns.Select(c => cursor.GetGetter<ReadOnlyMemory<char>>(c)).ToList();
        ReadOnlyMemory<char> value = default;
        string Get(int i) { getters[i](ref value); return value.ToString(); }
        while (cursor.MoveNext())
        {
            string problem = Get(0), answer = Get(1);
            // A stable key: the id when given, else the problem's text and answer (never the row number, which shifts).
            string id = getters.Count > 2 ? Get(2) : ProblemKey.FromText(problem, answer);
            problems.Add(new ProblemInput(id, problem, answer));
        }
        return problems;
    }

    public async Task<StepPreferenceReport> RunAsync(IReadOnlyList<ProblemInput> problems, IProgress<StepPreferenceReport>? progress, CancellationToken cancellationToken)
    {
        using var output = new ResumableOutput(_options.OutputPath!, _options.AnswerPairsPath);
        // Progress written by versions that keyed rows by number: a problem whose text hash it records is done.
        var legacy = _options.IdColumnName is { Length: > 0 } ? new HashSet<ulong>() : ProblemKey.LegacyTextHashes(output.CommittedIds);
        bool Done(ProblemInput p) => output.IsDone(p.Id) || (legacy.Count > 0 && legacy.Contains(ProblemKey.LegacyTextHash(p.Problem)));
        int resumed = problems.Count(Done);
        // The same key twice in the input: the first one wins.
        var todo = problems.Where(p => !Done(p)).DistinctBy(p => p.Id, StringComparer.Ordinal).ToList();
        StepPreferenceReport Report(StepPreferenceReport totals) => totals with { TotalProblems = problems.Count, Resumed = resumed };
        progress?.Report(Report(output.Totals));

        // Problems run concurrently but are committed in input order, so the output is the same for any concurrency (a
        // problem's result depends on the problem and the options only); a finished problem waiting for an earlier one
        // is redone on resume, like an unfinished one.
        var finished = new (List<StepPreferenceRow> Pairs, List<StepPreferenceRow> AnswerPairs, ProblemCounts Counts)?[todo.Count];
        int nextCommit = 0;
        var commitGate = new object();
        await Parallel.ForEachAsync(Enumerable.Range(0, todo.Count), new ParallelOptions { MaxDegreeOfParallelism = _options.MaxConcurrency, CancellationToken = cancellationToken },
            async (index, ct) =>
            {
                var result = await ProcessAsync(todo[index], ct).ConfigureAwait(false);
                ct.ThrowIfCancellationRequested(); // a cancelled problem is not committed: it is redone on resume
                lock (commitGate)
                {
                    finished[index] = result;
                    for (; nextCommit < todo.Count && finished[nextCommit] is { } ready; nextCommit++)
                    {
                        finished[nextCommit] = null;
                        var totals = output.Commit(todo[nextCommit].Id, ready.Pairs, ready.AnswerPairs, ready.Counts);
                        progress?.Report(Report(totals));
                    }
                }
            }).ConfigureAwait(false);
        return Report(output.Totals);
    }

    internal async Task<(List<StepPreferenceRow> Pairs, List<StepPreferenceRow> AnswerPairs, ProblemCounts Counts)> ProcessAsync(ProblemInput p, CancellationToken ct)
    {
        long seed = _options.Seed + (long)(StableHash.Fnv1a64(p.Id) & 0x7fffffff);
        string start = SolutionText.PrefixBefore(Array.Empty<string>(), 1);
        try
        {
            // 1. Error collection: K samples from the policy; keep the distinct wrong ones.
            var samples = await _policy.CompleteAsync(
                new CompletionRequest(p.Problem, start, _options.SamplesPerProblem, _options.Sampling with { Seed = seed }), ct).ConfigureAwait(false);
            var correct = new List<string>();
            var wrong = new List<string>();
            foreach (var s in samples.Distinct(StringComparer.Ordinal))
                (AnswerEquivalence.IsCorrect(start + s, p.Answer) ? correct : wrong).Add(s);
            // A right answer reached through a wrong calculation is no example of a correct solution.
            var sound = new List<string>();
            foreach (var c in correct)
                if (await PassesChecksAsync(p, start + c, ct).ConfigureAwait(false)) sound.Add(c);

            // 2.–3. The wrong samples are localized and rectified concurrently (each result depends on its sample only: a
            // prefix gets the same rollouts whichever sample examines it first), then taken in order.
            var outcomes = await Task.WhenAll(wrong.Select((sample, w) => LocateAndRectifyAsync(p, start + sample, seed + 1 + 131L * w, ct))).ConfigureAwait(false);
            var pairs = new List<StepPreferenceRow>();
            var seenPairs = new HashSet<(string, string, string)>();
            int located = 0, rectified = 0;
            foreach (var outcome in outcomes)
            {
                if (outcome is not var (prefix, rejected, fullRejected, continuations)) continue;
                located++;
                int before = pairs.Count;
                foreach (var c in continuations)
                {
                    string chosen = SolutionText.FirstStep(c);
                    if (chosen.Length == 0 || chosen == rejected || seenPairs.Contains((prefix, chosen, rejected))) continue;
                    if (!await PassesChecksAsync(p, prefix + c, ct).ConfigureAwait(false)) continue;
                    seenPairs.Add((prefix, chosen, rejected));
                    pairs.Add(new StepPreferenceRow(_options.Dataset, p.Problem, prefix, chosen, rejected, SolutionText.StepBody(c), fullRejected, p.Answer));
                }
                if (pairs.Count > before) rectified++;
            }

            // Answer-level pairs from the same samples: the i-th distinct correct against the i-th distinct wrong.
            var answerPairs = new List<StepPreferenceRow>();
            if (_options.AnswerPairsPath is not null)
            {
                for (int i = 0; i < Math.Min(sound.Count, wrong.Count); i++)
                {
                    string chosen = SolutionText.StepBody(sound[i]), rejected = SolutionText.StepBody(wrong[i]);
                    answerPairs.Add(new StepPreferenceRow(_options.Dataset, p.Problem, start, chosen, rejected, chosen, rejected, p.Answer));
                }
            }
            return (pairs, answerPairs, new ProblemCounts(samples.Count, wrong.Count, located, rectified, pairs.Count, answerPairs.Count));
        }
        catch (ContextLengthExceededException) when (!_options.FailBeyondContext)
        {
            // Skipped: recorded as done (it would not fit on a resume either), with no rows, and counted.
            return (new List<StepPreferenceRow>(), new List<StepPreferenceRow>(), ProblemCounts.SkippedBeyondContext);
        }
        catch (ContextLengthExceededException e)
        {
            throw new ContextLengthExceededException($"Problem \"{Abbreviate(p.Problem)}\": {e.Message}",
                e.PromptTokens, e.ContextLength, e);
        }
        finally
        {
            foreach (var r in _rolloutVerifiers) r.Cache?.Forget(p.Problem);
        }
    }

    // The start of a problem's text on one line, for messages.
    private static string Abbreviate(string text)
    {
        string line = string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return line.Length <= 60 ? line : line[..60] + "…";
    }

    /// <summary>
    /// 2. Localization of the first wrong step of <paramref name="solution"/>, then 3. rectification from the prefix
    /// ending at "Step k:" (the rectification seed is <paramref name="seed"/> + k). Null when no step is found wrong.
    /// </summary>
    private async Task<(string Prefix, string Rejected, string FullRejected, List<string> Continuations)?> LocateAndRectifyAsync(
        ProblemInput p, string solution, long seed, CancellationToken ct)
    {
        var steps = StepSegmentation.Segment(solution, _segmentation).Select(s => s.Text).ToArray();
        if (steps.Length == 0) return null;
        var location = await _locator.LocateAsync(new StepVerificationInput(p.Problem, steps, p.Answer), ct).ConfigureAwait(false);
        if (location.FirstErrorStep < 1) return null;
        int k = location.FirstErrorStep;
        string prefix = SolutionText.PrefixBefore(steps, k);
        var continuations = await RectifyAsync(p, prefix, seed + k, ct).ConfigureAwait(false);
        return (prefix, SolutionText.StepBody(steps[k - 1]), SolutionText.ContinuationFrom(steps, k), continuations);
    }

    /// <summary>False when a cheap verifier (the pipeline's arithmetic verifiers) flags a step of <paramref name="solution"/> as wrong.</summary>
    private async Task<bool> PassesChecksAsync(ProblemInput p, string solution, CancellationToken ct)
    {
        if (_chosenChecks.Count == 0) return true;
        var steps = StepSegmentation.Segment(solution, _segmentation).Select(s => s.Text).ToArray();
        foreach (var v in _chosenChecks)
        {
            var checks = await v.VerifyAsync(new StepVerificationInput(p.Problem, steps, p.Answer), ct).ConfigureAwait(false);
            if (checks.Any(c => c.Verdict == StepVerdict.Incorrect)) return false;
        }
        return true;
    }

    /// <summary>
    /// Continuations from <paramref name="prefix"/> that reach the answer: the rollout verifiers' rollouts from it (drawn
    /// by the localization, or drawn now: the same either way, so the pairs do not depend on which of a problem's
    /// solutions, localized concurrently, examined the prefix first), topped up to M fresh samples.
    /// </summary>
    private async Task<List<string>> RectifyAsync(ProblemInput p, string prefix, long seed, CancellationToken ct)
    {
        var successful = new List<string>();
        int drawn = 0;
        foreach (var r in _rolloutVerifiers)
        {
            var outcome = await r.RolloutsAsync(p.Problem, prefix, p.Answer, ct).ConfigureAwait(false);
            successful.AddRange(outcome.Successful);
            drawn += outcome.Drawn;
        }
        int more = _options.RectificationSamples - drawn;
        if (more > 0)
        {
            var fresh = await _policy.CompleteAsync(new CompletionRequest(p.Problem, prefix, more, _options.Sampling with { Seed = seed }), ct).ConfigureAwait(false);
            successful.AddRange(fresh.Where(c => AnswerEquivalence.IsCorrect(prefix + c, p.Answer)));
        }
        return successful;
    }
}
