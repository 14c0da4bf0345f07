using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Tests.Sampling;
using Microsoft.ML.StepDpo.Verification;

namespace Microsoft.ML.StepDpo.Tests.Pipeline;

/// <summary>The pipeline runs the caller's verifiers its own way (failures stop a problem, rollouts are kept) without changing them.</summary>
[TestClass]
public sealed class CallerVerifiersTests
{
    private sealed class ProblemRow
    {
        public string Problem { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    private static readonly IReadOnlyList<ArithmeticProblem> s_problems =
        ArithmeticTask.Generate(ArithmeticTaskOptions.Default, count: 6, seed: 5, TaskSplit.Train);

    private static readonly StepVerificationInput s_wrong = new("Tom has 2 bags of 3.", new[] { "2*3=6.", "6+1=8.\nThe answer is 8." }, "7", null);

    private string _dir = "";

    [TestInitialize]
    public void Init() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), $"callerverifiers-{Guid.NewGuid():N}"));

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, recursive: true);

    private StepPreferenceOptions Options(ICompletionSource policy, string name, IList<IStepVerifier>? verifiers) => new()
    {
        Policy = policy, Verifiers = verifiers, OutputPath = Path.Combine(_dir, name + ".jsonl"),
        SamplesPerProblem = 8, RectificationSamples = 4, RolloutsPerPrefix = 4, MaxConcurrency = 2,
    };

    private static IDataView Problems(MLContext ml) =>
        ml.Data.LoadFromEnumerable(s_problems.Select(p => new ProblemRow { Problem = p.Question, Answer = p.Answer.ToString() }));

    [TestMethod]
    public void ARolloutVerifierIsUsedAsTheDefaultOneAndLeftUnchanged()
    {
        var ml = new MLContext(seed: 1);
        var byDefault = Options(ScriptedArithmeticPolicy.Create(s_problems), "default", verifiers: null);
        ml.StepDpo().BuildStepPreferences(Problems(ml), byDefault);

        var policy = ScriptedArithmeticPolicy.Create(s_problems);
        var given = Options(policy, "given", verifiers: null);
        var rollout = new RolloutStepVerifier(policy, given.RolloutsPerPrefix, given.Sampling with { Seed = given.Seed });
        given.Verifiers = new List<IStepVerifier> { new ArithmeticStepVerifier(), rollout };
        var report = ml.StepDpo().BuildStepPreferences(Problems(ml), given);

        // The same pairs as the pipeline's own verifiers give: rectification reused the rollouts as before.
        Assert.IsGreaterThan(0L, report.Pairs);
        CollectionAssert.AreEquivalent(File.ReadAllLines(byDefault.OutputPath!), File.ReadAllLines(given.OutputPath!));
        Assert.IsGreaterThan(0L, rollout.RolloutsUsed, "the run's rollouts count in the caller's verifier");

        // The caller's verifier is as it was: a failing generator still gives Unknown rather than an exception.
        Assert.IsNull(rollout.Cache);
        Assert.IsFalse(rollout.ThrowOnFailure);
        policy.Fail = _ => new InvalidOperationException("generator down");
        var checks = rollout.VerifyAsync(s_wrong).Result;
        Assert.IsTrue(checks.All(c => c.Verdict == StepVerdict.Unknown), string.Join("; ", checks));
        StringAssert.Contains(checks[0].Evidence, "generator down");
    }

    [TestMethod]
    public async Task AFailingJudgeStopsTheRunButNotTheCallersJudge()
    {
        var ml = new MLContext(seed: 1);
        var judge = new JudgeStepVerifier(new ScriptedChatClient((_, _, _) => throw new InvalidOperationException("judge down")), retry: RetryPolicy.None);
        var options = Options(ScriptedArithmeticPolicy.Create(s_problems), "judged", new List<IStepVerifier> { judge });

        // In the pipeline a failed request stops the problem (it is redone on resume), not "no error found".
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => ml.StepDpo().BuildStepPreferencesAsync(Problems(ml), options));
        StringAssert.Contains(e.Message, "judge down");
        Assert.IsFalse(File.Exists(options.OutputPath + ".progress.jsonl") && File.ReadAllLines(options.OutputPath + ".progress.jsonl").Length > 0,
            "no problem was recorded");

        // The caller's judge still answers Unknown on a failure, as documented.
        Assert.IsFalse(judge.ThrowOnFailure);
        var checks = await judge.VerifyAsync(s_wrong);
        Assert.IsTrue(checks.All(c => c.Verdict == StepVerdict.Unknown));
        StringAssert.Contains(checks[0].Evidence, "judge down");
    }
}
