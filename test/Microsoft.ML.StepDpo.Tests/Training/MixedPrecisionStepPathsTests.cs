using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Training;

/// <summary>
/// <see cref="MixedPrecisionAdamW"/>'s two paths give the same bits: the step that takes the model's bf16 gradients one
/// parameter at a time (a step with one backward) and the plain path that first folds every gradient into an fp32
/// gradient held by its master (<see cref="MixedPrecisionAdamW.AccumulateGradients"/> after the backward): same weights,
/// masters, moments, step counts and gradient norms.
/// </summary>
[TestClass]
public sealed class MixedPrecisionStepPathsTests
{
    // bf16 tensors large enough for libtorch to split their reductions and element-wise loops across threads, a bf16
    // vector (no weight decay), a bf16 matrix that misses its gradient in one step after having had one (AdamW still moves
    // it on its moments), a bf16 vector that never has one, and an fp32 matrix (no master) beside them.
    private static readonly long[][] s_shapes = { new long[] { 300, 200 }, new long[] { 200 }, new long[] { 64, 48 }, new long[] { 16 }, new long[] { 50, 30 } };
    private static readonly ScalarType[] s_dtypes = { ScalarType.BFloat16, ScalarType.BFloat16, ScalarType.BFloat16, ScalarType.BFloat16, ScalarType.Float32 };

    private static List<Parameter> Parameters()
    {
        var list = new List<Parameter>();
        for (int i = 0; i < s_shapes.Length; i++)
        {
            torch.manual_seed(100 + i);
            list.Add(new Parameter((torch.randn(s_shapes[i]) * KeptScalars.Num(0.02)).to(s_dtypes[i]), requires_grad: true));
        }
        return list;
    }

    private static bool HasGradient(int step, int i) => i != 3 && !(i == 2 && step == 2);

    /// <summary>The gradient of parameter <paramref name="i"/> at <paramref name="step"/>: the same numbers for both runs, of a size that changes from step to step.</summary>
    private static Tensor Gradient(int step, int i)
    {
        torch.manual_seed(1000 * step + i);
        double scale = (1 + step % 3) * 0.01;
        return (torch.randn(s_shapes[i]) * KeptScalars.Num(scale)).to(s_dtypes[i]);
    }

    private sealed record Run(List<Parameter> Weights, double[] Norms, byte[] Masters, byte[] State);

    private static Run Train(bool plain, double maxGradNorm)
    {
        var weights = Parameters();
        var norms = new double[5];
        var dir = Directory.CreateTempSubdirectory("stepdpo-mp-paths-").FullName;
        try
        {
            using (var optimizer = new MixedPrecisionAdamW(weights, 1e-3, 0.1))
            {
                for (int s = 0; s < norms.Length; s++)
                {
                    optimizer.ZeroGrad();
                    for (int i = 0; i < weights.Count; i++)
                        if (HasGradient(s, i)) weights[i].grad = Gradient(s, i);
                    if (plain) optimizer.AccumulateGradients();
                    norms[s] = optimizer.Step(1e-3 * (1 + s % 2), maxGradNorm);
                }
                optimizer.Save(dir);
            }
            return new Run(weights, norms, File.ReadAllBytes(Path.Combine(dir, MixedPrecisionAdamW.MastersFile)),
                File.ReadAllBytes(Path.Combine(dir, MixedPrecisionAdamW.StateFile)));
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    [DataRow(0.5, 5)]   // clipping scales every step's gradients (norms ≈ 2.5, 5.1, 7.5, 2.5, 5.1)
    [DataRow(4.0, 3)]   // some steps
    [DataRow(1e3, 0)]   // none (the coefficient is 1)
    public void TheOneParameterAtATimeStepGivesThePlainPathsBits(double maxGradNorm, int clippedSteps)
    {
        var plain = Train(plain: true, maxGradNorm);
        var streamed = Train(plain: false, maxGradNorm);
        CollectionAssert.AreEqual(plain.Norms, streamed.Norms, $"gradient norms: {string.Join(", ", plain.Norms)} vs {string.Join(", ", streamed.Norms)}");
        Assert.AreEqual(clippedSteps, plain.Norms.Count(n => n > maxGradNorm), "steps clipped; gradient norms " + string.Join(", ", plain.Norms));
        for (int i = 0; i < plain.Weights.Count; i++)
        {
            Assert.AreEqual(s_dtypes[i], streamed.Weights[i].dtype);
            Assert.IsTrue(plain.Weights[i].equal(streamed.Weights[i]).all().item<bool>(), $"weight {i} differs");
        }
        CollectionAssert.AreEqual(plain.Masters, streamed.Masters, "the fp32 masters");
        CollectionAssert.AreEqual(plain.State, streamed.State, "AdamW's state (step counts and moments)");
        using var initial = Parameters()[3].detach();
        Assert.IsTrue(initial.equal(streamed.Weights[3]).all().item<bool>(), "a parameter that never had a gradient does not move");
        using var before = Parameters()[2].detach();
        Assert.IsFalse(before.equal(streamed.Weights[2]).all().item<bool>(), "the weights moved");
    }

    // The same through the training loop, on a tiny bf16 Qwen2 (Step-DPO, cached reference): its default (the model's
    // gradients taken one parameter at a time after a step's last backward) against the plain path (folded into fp32 after
    // every backward). The final checkpoint holds the weights, masters and AdamW state.

    private static readonly Qwen2Config s_config = Qwen2Config.Tiny(vocab: 40, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64);

    private static List<TokenizedPair> Pairs(int n, int seed)
    {
        var rng = new Random(seed);
        int[] R(int k) => Enumerable.Range(0, k).Select(_ => rng.Next(1, s_config.VocabSize)).ToArray();
        return Enumerable.Range(0, n).Select(_ =>
        {
            var ctx = R(rng.Next(6, 14));
            return new TokenizedPair(ctx.Concat(R(rng.Next(2, 6))).ToArray(), ctx.Length, ctx.Concat(R(rng.Next(2, 6))).ToArray(), ctx.Length);
        }).ToList();
    }

    private static (double[] Norms, double[] Losses, Dictionary<string, byte[]> Files) TrainLoop(bool plain, int accumulation, double maxGradNorm)
    {
        var model = new Qwen2TrainingModel(Qwen2ForCausalLM.CreateRandom(s_config, ScalarType.BFloat16, seed: 5));
        var pairs = Pairs(16, 3);
        var dir = Directory.CreateTempSubdirectory("stepdpo-mp-loop-").FullName;
        try
        {
            var options = new TrainingLoopOptions
            {
                Epochs = 3, BatchSize = 8 / accumulation, GradientAccumulationSteps = accumulation, LearningRate = 1e-3, WarmupRatio = 0,
                WeightDecay = 0.01, MaxGradNorm = maxGradNorm, Seed = 7, LogInterval = 1, CheckpointDirectory = dir,
                FoldGradientsAfterEveryBackward = plain,
            };
            var cache = ReferenceLogProbs.Compute(model, pairs, 8, prefixSharing: true);
            var loop = new TrainingLoop<TokenizedPair>(model, new PreferenceObjective { Beta = 0.1, Cache = cache }, options);
            loop.Run(pairs);
            var latest = Path.Combine(dir, TrainingLoop<TokenizedPair>.LatestName);
            var files = new[] { "weights.bin", MixedPrecisionAdamW.MastersFile, MixedPrecisionAdamW.StateFile }
                .ToDictionary(f => f, f => File.ReadAllBytes(Path.Combine(latest, f)));
            return (loop.History.Select(r => r["grad_norm"]).ToArray(), loop.History.Select(r => r["loss"]).ToArray(), files);
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    [DataRow(1)]   // one backward a step: the one-at-a-time step
    [DataRow(2)]   // two micro-batches: fp32 sums between them, the last backward's gradients folded by the step
    public void ABf16LoopGivesThePlainPathsBits(int accumulation)
    {
        const double maxGradNorm = 0.38;   // the norms fall from 0.40 to 0.35 over the six steps
        var plain = TrainLoop(plain: true, accumulation, maxGradNorm);
        var streamed = TrainLoop(plain: false, accumulation, maxGradNorm);
        string norms = string.Join(", ", plain.Norms);
        Assert.IsTrue(plain.Norms.Any(n => n > maxGradNorm) && plain.Norms.Any(n => n < maxGradNorm), "clipping must act in some steps and not in others: " + norms);
        CollectionAssert.AreEqual(plain.Norms, streamed.Norms, $"gradient norms: {norms} vs {string.Join(", ", streamed.Norms)}");
        CollectionAssert.AreEqual(plain.Losses, streamed.Losses, "losses");
        Assert.AreNotEqual(plain.Losses[0], plain.Losses[^1], "training must move the model");
        foreach (var (file, bytes) in plain.Files)
            CollectionAssert.AreEqual(bytes, streamed.Files[file], file);
    }
}
