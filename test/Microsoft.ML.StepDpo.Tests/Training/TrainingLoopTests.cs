using Microsoft.ML.StepDpo.Training;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Tests.Training;

[TestClass]
public sealed class TrainingLoopTests
{
    /// <summary>Random toy pairs with a shared context (also used by the kill-and-resume tests).</summary>
    internal static List<TokenizedPair> Pairs(int n, int seed)
    {
        var rng = new Random(seed);
        int[] R(int k) => Enumerable.Range(0, k).Select(_ => rng.Next(1, 40)).ToArray();
        return Enumerable.Range(0, n).Select(_ =>
        {
            var ctx = R(rng.Next(3, 10));
            return new TokenizedPair(ctx.Concat(R(rng.Next(1, 5))).ToArray(), ctx.Length, ctx.Concat(R(rng.Next(1, 5))).ToArray(), ctx.Length);
        }).ToList();
    }

    private static TrainingLoopOptions Options(string? dir = null) => new()
    {
        Epochs = 2, BatchSize = 4, GradientAccumulationSteps = 2, LearningRate = 1e-2, WarmupRatio = 0.1,
        WeightDecay = 0.01, MaxGradNorm = 1.0, Seed = 11, CheckpointDirectory = dir, LogInterval = 2,
    };

    private static string TempDir() => Directory.CreateTempSubdirectory("stepdpo-loop-").FullName;

    [TestMethod]
    public void StepDpoTrainingRaisesTheRewardMargin()
    {
        var model = ToyLanguageModel.Create(1, dropout: 0);
        var pairs = Pairs(16, 2);
        var cache = ReferenceLogProbs.Compute(model, pairs, 8, prefixSharing: true);
        var loop = new TrainingLoop<TokenizedPair>(model, new PreferenceObjective { Beta = 0.4, Cache = cache },
            new TrainingLoopOptions { Epochs = 6, BatchSize = 8, LearningRate = 2e-2, Seed = 1, LogInterval = 1 });
        loop.Run(pairs);
        var first = loop.History.First();
        var last = loop.History.Last();
        Assert.AreEqual(Math.Log(2), first["loss"], 1e-5, "policy == reference at the first step");
        Assert.IsLessThan(first["loss"], last["loss"]);
        Assert.IsGreaterThan(0.5, last["rewards/margins"]);
        Assert.AreEqual(1.0, last["rewards/accuracies"], 1e-9);
        foreach (var key in new[] { "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected", "grad_norm", "learning_rate", "tokens_per_s" })
            Assert.IsTrue(last.ContainsKey(key), key);
    }

    [TestMethod]
    public void CachedReferenceGivesTheSameLossAndGradientsAsALiveFrozenCopy()
    {
        var pairs = Pairs(6, 3);
        var policy = ToyLanguageModel.Create(4, ScalarType.Float64, dropout: 0);
        var frozen = ToyLanguageModel.Create(4, ScalarType.Float64, dropout: 0);
        // Move the policy away from the reference so the log-ratios are not zero.
        using (torch.no_grad()) foreach (var p in policy.parameters()) p.add_(torch.randn_like(p) * 0.05);
        var cache = ReferenceLogProbs.Compute(frozen, pairs, 4, prefixSharing: true);
        var idx = Enumerable.Range(0, pairs.Count).ToArray();

        Dictionary<string, Tensor> Grads(ITrainingObjective<TokenizedPair> objective, out double loss)
        {
            policy.zero_grad();
            var (l, _, _) = objective.Compute(policy, pairs, idx);
            l.backward();
            loss = l.item<double>();
            return policy.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        }
        var optimized = Grads(new PreferenceObjective { Beta = 0.4, Cache = cache, PrefixSharing = true }, out var lossOpt);
        var plain = Grads(new PreferenceObjective { Beta = 0.4, ReferenceModel = frozen, PrefixSharing = false }, out var lossPlain);
        Assert.AreEqual(lossPlain, lossOpt, 1e-10 * Math.Abs(lossPlain));
        foreach (var (name, g) in plain)
            Assert.IsTrue(g.allclose(optimized[name], rtol: 1e-8, atol: 1e-12), name);
    }

    [TestMethod]
    public void ResumingAfterCancellationReproducesTheUninterruptedRunBitForBit()
    {
        var pairs = Pairs(20, 5);
        var straight = ToyLanguageModel.Create(7);
        new TrainingLoop<TokenizedPair>(straight, new PreferenceObjective { Beta = 0.4, ReferenceModel = ToyLanguageModel.Create(7) }, Options()).Run(pairs);

        var dir = TempDir();
        try
        {
            using var cts = new CancellationTokenSource();
            var first = ToyLanguageModel.Create(7);
            var o = Options(dir);
            o.CancellationToken = cts.Token;
            o.Progress = new SyncProgress(p => { if (p.Step == 3) cts.Cancel(); });
            var objective = new PreferenceObjective { Beta = 0.4, ReferenceModel = ToyLanguageModel.Create(7) };
            Assert.ThrowsExactly<OperationCanceledException>(() => new TrainingLoop<TokenizedPair>(first, objective, o).Run(pairs));

            // A new process would start from the same initial weights and the checkpoint folder.
            var resumed = ToyLanguageModel.Create(7);
            var loop = new TrainingLoop<TokenizedPair>(resumed, objective, Options(dir));
            loop.Run(pairs);
            var a = straight.Snapshot();
            var b = resumed.Snapshot();
            foreach (var (name, t) in a)
                Assert.IsTrue(t.equal(b[name]).all().item<bool>(), $"{name} differs after resume");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void ANonFiniteLossStopsWithTheLastGoodCheckpoint()
    {
        var dir = TempDir();
        try
        {
            var model = ToyLanguageModel.Create(9);
            var loop = new TrainingLoop<TokenizedPair>(model, new NaNAtStep(3), Options(dir));
            var e = Assert.ThrowsExactly<InvalidOperationException>(() => loop.Run(Pairs(20, 6)));
            StringAssert.Contains(e.Message, "NaN");
            var state = File.ReadAllText(Path.Combine(dir, "checkpoint-latest", "state.json"));
            StringAssert.Contains(state, "\"Step\":2");
            // The saved weights are the ones the model had when it stopped (nothing applied for the bad step).
            var reloaded = ToyLanguageModel.Create(123);
            reloaded.LoadTrainableState(Path.Combine(dir, "checkpoint-latest", "weights.bin"));
            var a = model.Snapshot(); var b = reloaded.Snapshot();
            foreach (var (name, t) in a) Assert.IsTrue(t.equal(b[name]).all().item<bool>(), name);
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void ACheckpointFromAnotherRunIsRefused()
    {
        var dir = TempDir();
        try
        {
            var o = Options(dir); o.Epochs = 1;
            new TrainingLoop<TokenizedPair>(ToyLanguageModel.Create(1), new PreferenceObjective { Beta = 0.4, ReferenceModel = ToyLanguageModel.Create(1) }, o).Run(Pairs(8, 1));
            var other = Options(dir); other.LearningRate = 3e-3;
            var e = Assert.ThrowsExactly<InvalidOperationException>(() =>
                new TrainingLoop<TokenizedPair>(ToyLanguageModel.Create(1), new PreferenceObjective { Beta = 0.4, ReferenceModel = ToyLanguageModel.Create(1) }, other).Run(Pairs(8, 1)));
            StringAssert.Contains(e.Message, "different run");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void SftLowersTheResponseNll()
    {
        var model = ToyLanguageModel.Create(2, dropout: 0);
        var rng = new Random(3);
        var data = Enumerable.Range(0, 12).Select(_ =>
        {
            int a = rng.Next(1, 10);
            return new TokenizedSequence(new[] { a, a + 1, a + 2, a + 3, a + 4 }, 2); // a learnable pattern
        }).ToList();
        var loop = new TrainingLoop<TokenizedSequence>(model, new SftObjective(), new TrainingLoopOptions { Epochs = 30, BatchSize = 6, LearningRate = 3e-2, LogInterval = 5 });
        loop.Run(data);
        Assert.IsLessThan(loop.History.First()["loss"] * 0.5, loop.History.Last()["loss"]);
    }

    [TestMethod]
    public void ScheduleWarmsUpThenDecaysToZero()
    {
        Assert.AreEqual(0.0, CosineSchedule.Multiplier(0, 100, 10));
        Assert.AreEqual(0.5, CosineSchedule.Multiplier(5, 100, 10), 1e-12);
        Assert.AreEqual(1.0, CosineSchedule.Multiplier(10, 100, 10), 1e-12);
        Assert.AreEqual(0.5, CosineSchedule.Multiplier(55, 100, 10), 1e-12);
        Assert.AreEqual(0.0, CosineSchedule.Multiplier(100, 100, 10), 1e-12);
        Assert.AreEqual(10, CosineSchedule.WarmupSteps(100, 0.1));
    }

    [TestMethod]
    public void InvalidOptionsAreRejectedUpFront()
    {
        var model = ToyLanguageModel.Create(1);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainingLoop<TokenizedPair>(model, new PreferenceObjective { Beta = 0.4 }, new TrainingLoopOptions { BatchSize = 0 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainingLoop<TokenizedPair>(model, new PreferenceObjective { Beta = 0.4 }, new TrainingLoopOptions { LearningRate = double.NaN }));
    }

    /// <summary>Reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<TrainingProgress> a) : IProgress<TrainingProgress> { public void Report(TrainingProgress v) => a(v); }

    /// <summary>A preference objective whose loss becomes NaN on the given (1-based) optimizer step.</summary>
    private sealed class NaNAtStep(int step) : ITrainingObjective<TokenizedPair>
    {
        private int _calls;
        private readonly PreferenceObjective _inner = new() { Beta = 0.4, ReferenceModel = ToyLanguageModel.Create(1) };
        public (Tensor Loss, Dictionary<string, double> Metrics, int Tokens) Compute(ICausalLanguageModel model, IReadOnlyList<TokenizedPair> batch, IReadOnlyList<int> indices)
        {
            var r = _inner.Compute(model, batch, indices);
            _calls++;
            // Options() uses 2 micro-batches per step.
            return _calls > (step - 1) * 2 ? (r.Loss * Num(double.NaN), r.Metrics, r.Tokens) : r;
        }
    }
}
