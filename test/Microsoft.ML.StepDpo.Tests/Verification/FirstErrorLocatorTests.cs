using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Verification;

namespace Microsoft.ML.StepDpo.Tests.Verification;

[TestClass]
public sealed class FirstErrorLocatorTests
{
    /// <summary>A verifier with fixed verdicts that records the steps it was asked about.</summary>
    private sealed class FixedVerifier(string name, params StepVerdict[] verdicts) : IStepVerifier
    {
        public string Name => name;

        public List<int> AskedStepCounts { get; } = [];

        public Task<IReadOnlyList<StepCheck>> VerifyAsync(StepVerificationInput input, CancellationToken cancellationToken = default)
        {
            AskedStepCounts.Add(input.Steps.Count);
            return Task.FromResult<IReadOnlyList<StepCheck>>(
                input.Steps.Select((_, i) => new StepCheck(verdicts[i], verdicts[i] == StepVerdict.Unknown ? "" : $"{name} says {verdicts[i]}")).ToList());
        }
    }

    private static StepVerificationInput Input(int steps) => new("p", Enumerable.Range(1, steps).Select(i => $"step {i}").ToArray(), "1");

    [TestMethod]
    public async Task FirstVerifierWithAVerdictDecidesEachStep()
    {
        var a = new FixedVerifier("a", StepVerdict.Unknown, StepVerdict.Correct, StepVerdict.Unknown, StepVerdict.Incorrect);
        var b = new FixedVerifier("b", StepVerdict.Correct, StepVerdict.Incorrect, StepVerdict.Unknown, StepVerdict.Correct);
        var c = new FixedVerifier("c", StepVerdict.Incorrect, StepVerdict.Incorrect, StepVerdict.Neutral, StepVerdict.Correct);
        var result = await new FirstErrorLocator([a, b, c]).LocateAsync(Input(4));
        CollectionAssert.AreEqual(new[] { StepVerdict.Correct, StepVerdict.Correct, StepVerdict.Neutral, StepVerdict.Incorrect }, result.Steps.Select(s => s.Verdict).ToArray());
        CollectionAssert.AreEqual(new[] { "b", "a", "c", "a" }, result.Steps.Select(s => s.DecidedBy).ToArray());
        Assert.AreEqual(4, result.FirstErrorStep);
        Assert.AreEqual("step 4 [a]: a says Incorrect", result.Evidence);

        // The reference judge protocol: a neutral step is the error.
        var neutral = await new FirstErrorLocator([a, b, c], neutralIsError: true).LocateAsync(Input(4));
        Assert.AreEqual(3, neutral.FirstErrorStep);
    }

    [TestMethod]
    public async Task LaterVerifiersAreOnlyAskedUpToTheEarliestErrorAndNotWhenAllIsDecided()
    {
        var a = new FixedVerifier("a", StepVerdict.Unknown, StepVerdict.Unknown, StepVerdict.Incorrect, StepVerdict.Unknown, StepVerdict.Unknown);
        var b = new FixedVerifier("b", StepVerdict.Correct, StepVerdict.Unknown, StepVerdict.Correct, StepVerdict.Correct, StepVerdict.Correct);
        var c = new FixedVerifier("c", StepVerdict.Correct, StepVerdict.Incorrect, StepVerdict.Correct, StepVerdict.Correct, StepVerdict.Correct);
        var d = new FixedVerifier("d", StepVerdict.Incorrect, StepVerdict.Incorrect, StepVerdict.Incorrect, StepVerdict.Incorrect, StepVerdict.Incorrect);
        var result = await new FirstErrorLocator([a, b, c, d]).LocateAsync(Input(5));
        Assert.AreEqual(2, result.FirstErrorStep);
        CollectionAssert.AreEqual(new[] { 5 }, a.AskedStepCounts);
        CollectionAssert.AreEqual(new[] { 3 }, b.AskedStepCounts);
        CollectionAssert.AreEqual(new[] { 3 }, c.AskedStepCounts);
        Assert.IsEmpty(d.AskedStepCounts); // steps 1-2 are decided
        Assert.AreEqual(StepVerdict.Unknown, result.Steps[4].Verdict);
    }

    [TestMethod]
    public async Task NoErrorGivesMinusOneAndBadVerifiersAreReported()
    {
        var ok = new FixedVerifier("ok", StepVerdict.Correct, StepVerdict.Unknown);
        var result = await new FirstErrorLocator([ok]).LocateAsync(Input(2));
        Assert.AreEqual(-1, result.FirstErrorStep);
        Assert.AreEqual(string.Empty, result.Evidence);

        // A verifier that returns fewer verdicts than steps breaks the contract: say which one.
        var ex = await Assert.ThrowsExactlyAsync<InvalidOperationException>(() => new FirstErrorLocator([new ShortVerifier()]).LocateAsync(Input(2)));
        StringAssert.Contains(ex.Message, "'short'");
        Assert.ThrowsExactly<ArgumentException>(() => new FirstErrorLocator([]));
    }

    private sealed class ShortVerifier : IStepVerifier
    {
        public string Name => "short";

        public Task<IReadOnlyList<StepCheck>> VerifyAsync(StepVerificationInput input, CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<StepCheck>>([StepCheck.Unknown]);
    }

    [TestMethod]
    [DataRow("Easy")]
    [DataRow("Hard")]
    public async Task GeneratedGoldSolutionsPassAndMutatedStepsAreCaught(string preset)
    {
        var options = preset == "Easy" ? ArithmeticTaskOptions.Easy : ArithmeticTaskOptions.Hard;
        var verifier = new ArithmeticStepVerifier(confirmsCorrectCalculations: true);
        var locator = new FirstErrorLocator([verifier]);
        var rng = new Random(11);
        foreach (var p in ArithmeticTask.Generate(options, 300, seed: 9, TaskSplit.Train))
        {
            var gold = await locator.LocateAsync(new StepVerificationInput(p.Question, p.Steps, p.Answer.ToString()));
            Assert.AreEqual(-1, gold.FirstErrorStep, p.Solution);
            Assert.IsTrue(gold.Steps.All(s => s.Verdict == StepVerdict.Correct), p.Solution);

            // A model-like slip: one result off by a little; later steps carry the wrong number on correctly.
            int k = rng.Next(p.Steps.Count);
            var steps = p.Steps.ToArray();
            int eq = steps[k].IndexOf('=');
            int result = int.Parse(steps[k][(eq + 1)..^1]);
            int wrong = result + (rng.Next(2) == 0 ? -1 : 1) * rng.Next(1, 11);
            steps[k] = $"{steps[k][..(eq + 1)]}{wrong}.";
            var located = await locator.LocateAsync(new StepVerificationInput(p.Question, steps, p.Answer.ToString()));
            Assert.AreEqual(k + 1, located.FirstErrorStep, string.Join(" | ", steps));
            StringAssert.Contains(located.Evidence, "[arithmetic]");
        }
    }
}
