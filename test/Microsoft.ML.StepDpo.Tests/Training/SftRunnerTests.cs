using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Tests.Modeling;
using Microsoft.ML.StepDpo.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Training;

[TestClass]
public sealed class SftRunnerTests
{
    [ClassInitialize]
    public static void ClassInit(TestContext _) => SingleThread.Enter();

    [ClassCleanup]
    public static void ClassDone() => SingleThread.Exit();

    private static List<TokenizedSequence> Sequences(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ =>
        {
            int len = rng.Next(4, 40);
            var ids = Enumerable.Range(0, len).Select(_ => rng.Next(0, 20)).ToArray();
            return new TokenizedSequence(ids, rng.Next(1, len));
        }).ToList();
    }

    [TestMethod]
    public void LengthGroupedBatchesUseEverySequenceOnceWithinTheBudget()
    {
        var seqs = Sequences(500, 1);
        var batches = LengthGroupedBatches.Build(seqs, tokensPerBatch: 120, seed: 7, window: 4);
        var seen = batches.SelectMany(b => b).ToList();
        Assert.HasCount(seqs.Count, seen);
        CollectionAssert.AreEquivalent(seqs, seen, "every sequence exactly once (reference equality)");
        foreach (var b in batches)
            Assert.IsTrue(b.Length == 1 || b.Length * b.Max(s => s.Ids.Length) <= 120, "budget respected unless a single sequence exceeds it");
        // Grouping by length keeps padding small compared with a plain chunking of the shuffled order.
        double Padding(IEnumerable<TokenizedSequence[]> bs) =>
            bs.Sum(b => b.Length * b.Max(s => s.Ids.Length) - b.Sum(s => s.Ids.Length)) / (double)seqs.Sum(s => s.Ids.Length);
        var plain = seqs.Chunk(batches.Count > 0 ? (int)Math.Ceiling(seqs.Count / (double)batches.Count) : 1);
        Assert.IsLessThan(Padding(plain) / 3, Padding(batches));
    }

    [TestMethod]
    public void LengthGroupedBatchesAreDeterministicPerSeed()
    {
        var seqs = Sequences(200, 2);
        string Key(IReadOnlyList<TokenizedSequence[]> bs) => string.Join("|", bs.Select(b => string.Join(",", b.Select(s => seqs.IndexOf(s)))));
        Assert.AreEqual(Key(LengthGroupedBatches.Build(seqs, 100, 3)), Key(LengthGroupedBatches.Build(seqs, 100, 3)));
        Assert.AreNotEqual(Key(LengthGroupedBatches.Build(seqs, 100, 3)), Key(LengthGroupedBatches.Build(seqs, 100, 4)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => LengthGroupedBatches.Build(seqs, 0, 3));
    }

    [TestMethod]
    public void GroupedObjectiveEqualsThePlainSftLossOnTheSameSequences()
    {
        var model = new Qwen2TrainingModel(Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: 20), ScalarType.Float64, seed: 3));
        var seqs = Sequences(6, 5);
        using var scope = NewDisposeScope();
        var plain = new SftObjective().Compute(model, seqs, Enumerable.Range(0, 6).ToArray());
        var grouped = new GroupedSftObjective().Compute(model, new[] { seqs.Take(2).ToArray(), seqs.Skip(2).ToArray() }, new[] { 0, 1 });
        Assert.AreEqual(plain.Loss.item<double>(), grouped.Loss.item<double>(), 1e-12);
        Assert.AreEqual(plain.Tokens, grouped.Tokens);
    }

    [TestMethod]
    public void SftRunnerLearnsAndIsDeterministicWithTheSeed()
    {
        // A learnable pattern: the response continues an arithmetic progression started in the prompt.
        var rng = new Random(4);
        var data = Enumerable.Range(0, 60).Select(_ =>
        {
            int a = rng.Next(0, 6), len = rng.Next(6, 12);
            return new TokenizedSequence(Enumerable.Range(0, len).Select(i => (a + i) % 16).ToArray(), 2);
        }).ToList();

        (IReadOnlyList<Dictionary<string, double>> History, Dictionary<string, double[]> Weights) Run()
        {
            using var m = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: 16), seed: 9);
            var history = SftRunner.Train(new Qwen2TrainingModel(m), data,
                new SftRunOptions { Epochs = 4, TokensPerBatch = 64, LearningRate = 1e-2, Seed = 2, LogInterval = 5 });
            return (history, ModelTestUtil.Weights(m));
        }

        var a = Run();
        var b = Run();
        Assert.IsLessThan(a.History.First()["loss"] * 0.5, a.History.Last()["loss"]);
        foreach (var (name, w) in a.Weights)
            CollectionAssert.AreEqual(w, b.Weights[name], name);
        int steps = SftRunner.TotalSteps(data, new SftRunOptions { Epochs = 4, TokensPerBatch = 64, Seed = 2 });
        Assert.AreEqual(steps, (int)a.History.Last()["step"]);
    }
}
