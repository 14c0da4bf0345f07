using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Tests.Modeling;
using Microsoft.ML.StepDpo.Tests.Pipeline;
using Microsoft.ML.StepDpo.Verification;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Text;

using Microsoft.ML.StepDpo.Tests.Sampling;

namespace Microsoft.ML.StepDpo.Tests.Verification;

[TestClass]
public sealed class RolloutStepVerifierTests
{
    private const string Problem = "Mia has 12 books. Mia buys 6 boxes of 9. How many books now?";

    // A generator that can reach the answer exactly from prefixes free of the planted bad step: it finishes with
    // "The answer is {right}." on even sample indices and "{wrong}" on odd ones, and always "{wrong}" once the prefix
    // holds a step containing "BAD".
    private static ScriptedCompletionSource Oracle(string right = "66", string wrong = "68") => new((r, i) =>
        r.Prefix.Contains("BAD", StringComparison.Ordinal) || i % 2 == 1 ? $" ...\nThe answer is {wrong}." : $" ...\nThe answer is {right}.");

    private static string[] Steps(int n, int bad)
    {
        var steps = Enumerable.Range(1, n).Select(i => i == bad ? $"BAD {i}" : $"ok {i}").ToArray();
        steps[^1] += "\nThe answer is 68.";
        return steps;
    }

    private static StepVerdict[] Verdicts(IReadOnlyList<StepCheck> checks) => checks.Select(c => c.Verdict).ToArray();

    [TestMethod]
    public async Task FindsThePlantedStepAtEveryPositionWithinTheBinarySearchBudget()
    {
        for (int n = 1; n <= 13; n++)
        {
            for (int bad = 1; bad <= n; bad++)
            {
                var source = Oracle();
                var verifier = new RolloutStepVerifier(source, rolloutsPerPrefix: 4);
                var steps = Steps(n, bad);
                var checks = await verifier.VerifyAsync(new StepVerificationInput(Problem, steps, "66"));

                var expected = Enumerable.Range(1, n).Select(i => i < bad ? StepVerdict.Correct : i == bad ? StepVerdict.Incorrect : StepVerdict.Unknown).ToArray();
                CollectionAssert.AreEqual(expected, Verdicts(checks), $"n={n}, bad={bad}");
                Assert.IsTrue(verifier.RolloutsUsed <= verifier.MaxRolloutsFor(n), $"n={n}, bad={bad}: {verifier.RolloutsUsed} rollouts > budget {verifier.MaxRolloutsFor(n)}");
                Assert.AreEqual(4L * source.Calls, verifier.RolloutsUsed);
                // Every request continues a prefix that ends with the next step's marker.
                foreach (var r in source.Requests)
                    StringAssert.Matches(r.Prefix, new System.Text.RegularExpressions.Regex(@"^Let's think step by step\.(\nStep \d+: [^\n]+)*\nStep \d+:$"));
                StringAssert.Contains(checks[bad - 1].Evidence, bad == n ? "the solution misses the answer; 2/4" : "0/4 rollouts after this step reach the answer; 2/4 before it do", $"n={n}, bad={bad}");
            }
        }
    }

    [TestMethod]
    public async Task SpendsNothingWhenTheSolutionIsRightOrTheAnswerUnknown()
    {
        var source = Oracle();
        var verifier = new RolloutStepVerifier(source, 4);
        var right = await verifier.VerifyAsync(new StepVerificationInput(Problem, new[] { "6*9=54.", "12+54=66.\nThe answer is 66." }, "66"));
        CollectionAssert.AreEqual(new[] { StepVerdict.Unknown, StepVerdict.Unknown }, Verdicts(right));
        var noAnswer = await verifier.VerifyAsync(new StepVerificationInput(Problem, new[] { "BAD", "The answer is 68." }));
        CollectionAssert.AreEqual(new[] { StepVerdict.Unknown, StepVerdict.Unknown }, Verdicts(noAnswer));
        Assert.AreEqual(0, source.Calls);
    }

    [TestMethod]
    public async Task UnsolvableFromTheStartSaysUnknownAndFailuresSayUnknown()
    {
        var never = new ScriptedCompletionSource((_, _) => " The answer is 1.");
        var verifier = new RolloutStepVerifier(never, 3);
        var checks = await verifier.VerifyAsync(new StepVerificationInput(Problem, Steps(6, 2), "66"));
        Assert.IsTrue(checks.All(c => c.Verdict == StepVerdict.Unknown));
        StringAssert.Contains(checks[0].Evidence, "problem alone");
        // The search walks left (prefixes after steps 3 and 1), then tries the problem alone: 3 prefixes of 3.
        Assert.AreEqual(9L, verifier.RolloutsUsed);
        Assert.IsTrue(verifier.RolloutsUsed <= verifier.MaxRolloutsFor(6));

        var failing = new ScriptedCompletionSource((_, _) => "") { Fail = _ => new HttpRequestException("down") };
        var failed = await new RolloutStepVerifier(failing, 3).VerifyAsync(new StepVerificationInput(Problem, Steps(4, 2), "66"));
        Assert.IsTrue(failed.All(c => c.Verdict == StepVerdict.Unknown));
        StringAssert.Contains(failed[0].Evidence, "rollouts failed: down");

        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsExactlyAsync<OperationCanceledException>(() => new RolloutStepVerifier(Oracle(), 3).VerifyAsync(new StepVerificationInput(Problem, Steps(4, 2), "66"), cts.Token));
    }

    [TestMethod]
    public async Task CacheKeepsSuccessfulRolloutsAndReusesEstimates()
    {
        var source = Oracle();
        var cache = new RolloutCache();
        var verifier = new RolloutStepVerifier(source, 4) { Cache = cache };
        var steps = Steps(5, 3);
        var checks = await verifier.VerifyAsync(new StepVerificationInput(Problem, steps, "66"));
        Assert.AreEqual(StepVerdict.Incorrect, checks[2].Verdict);
        // The prefix that ends at "Step 3:" was examined (it reached the answer): its successful rollouts are kept.
        Assert.IsTrue(cache.TryGet(Problem, SolutionText.PrefixBefore(steps, 3), out var outcome));
        Assert.AreEqual(4, outcome.Drawn);
        Assert.AreEqual(2, outcome.Successful.Count);
        Assert.IsTrue(outcome.Successful.All(s => AnswerEquivalence.IsCorrect(SolutionText.PrefixBefore(steps, 3) + s, "66")));

        long used = verifier.RolloutsUsed;
        await verifier.VerifyAsync(new StepVerificationInput(Problem, steps, "66"));
        Assert.AreEqual(used, verifier.RolloutsUsed, "a second look at the same solution reuses every estimate");
        cache.Forget(Problem);
        Assert.AreEqual(0, cache.Count);
    }

    /// <summary>A source that holds every request until <paramref name="open"/> is set, so concurrent callers overlap.</summary>
    private sealed class HeldSource(ICompletionSource inner, Task open) : ICompletionSource
    {
        public async Task<IReadOnlyList<string>> CompleteAsync(CompletionRequest request, CancellationToken cancellationToken = default)
        {
            await open.WaitAsync(cancellationToken);
            return await inner.CompleteAsync(request, cancellationToken);
        }
    }

    [TestMethod]
    public async Task ConcurrentLocalizationsDrawEachPrefixOnce()
    {
        var oracle = Oracle();
        var open = new TaskCompletionSource();
        var verifier = new RolloutStepVerifier(new HeldSource(oracle, open.Task), 4) { Cache = new RolloutCache() };
        // Three solutions of one problem with the same first steps, located at once: their searches meet on the same
        // prefixes while the first draws are still held.
        var a = verifier.VerifyAsync(new StepVerificationInput(Problem, Steps(6, 4), "66"));
        var b = verifier.VerifyAsync(new StepVerificationInput(Problem, Steps(6, 4), "66"));
        var c = verifier.VerifyAsync(new StepVerificationInput(Problem, Steps(8, 4), "66"));
        open.SetResult();
        var results = await Task.WhenAll(a, b, c);
        foreach (var checks in results) Assert.AreEqual(StepVerdict.Incorrect, checks[3].Verdict);
        var prefixes = oracle.Requests.Select(r => r.Prefix).ToList();
        Assert.HasCount(prefixes.Distinct().Count(), prefixes, "every prefix drawn once: " + string.Join(" | ", prefixes));
        Assert.AreEqual(4L * prefixes.Count, verifier.RolloutsUsed);
    }

    [TestMethod]
    public async Task RealLocalModelEndToEnd()
    {
        SingleThread.Enter();
        try
        {
            // Whatever the prefix, this model continues "Step k:" with " 90." and stops.
            var (model, tokenizer) = BigramModel.Create(BigramModel.Chain(':', " 90."));
            using var source = new LocalModelCompletionSource(model, tokenizer, BigramModel.Template, maxBatchRows: 16, ownsModel: true);
            var steps = new[] { "3*20=60.", "60+20=80.", "80+5=85.", "85-4=81.", "The answer is 81." };

            // Reachable answer (90): every examined prefix reaches it, so the search walks right to the last step.
            var reachable = new RolloutStepVerifier(source, 3, new SamplingSettings { MaxNewTokens = 8 });
            var checks = await reachable.VerifyAsync(new StepVerificationInput(Problem, steps, "90"));
            CollectionAssert.AreEqual(new[] { StepVerdict.Correct, StepVerdict.Correct, StepVerdict.Correct, StepVerdict.Correct, StepVerdict.Incorrect }, Verdicts(checks));
            Assert.AreEqual(3L * 3, reachable.RolloutsUsed, "ceil(log2 5) = 3 prefixes of 3 rollouts");
            StringAssert.Contains(checks[3].Evidence, "3/3 rollouts after step 4");

            // Unreachable answer (77): the search walks left (after steps 2, 1) to the problem alone, which fails too: no verdict.
            var unreachable = new RolloutStepVerifier(source, 3, new SamplingSettings { MaxNewTokens = 8 });
            var none = await unreachable.VerifyAsync(new StepVerificationInput(Problem, steps, "77"));
            Assert.IsTrue(none.All(c => c.Verdict == StepVerdict.Unknown));
            Assert.AreEqual(3L * 3, unreachable.RolloutsUsed);
            Assert.IsTrue(unreachable.RolloutsUsed <= unreachable.MaxRolloutsFor(5));
        }
        finally
        {
            SingleThread.Exit();
        }
    }
}
