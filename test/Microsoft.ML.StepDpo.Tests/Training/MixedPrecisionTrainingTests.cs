using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Training;

/// <summary>
/// Full fine-tuning of a bf16 model: AdamW works on fp32 master weights (<see cref="MixedPrecisionAdamW"/>), so updates
/// smaller than bf16's resolution accumulate instead of rounding away; an fp32 model trains exactly as before.
/// </summary>
[TestClass]
public sealed class MixedPrecisionTrainingTests
{
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

    /// <summary>The tiny Qwen2 with HF-style random weights, in bf16 or (the same values) in fp32.</summary>
    private static Qwen2ForCausalLM Model(ScalarType dtype)
    {
        var model = Qwen2ForCausalLM.CreateRandom(s_config, ScalarType.BFloat16, seed: 5);
        if (dtype == ScalarType.BFloat16) return model;
        var copy = new Qwen2ForCausalLM(s_config, dtype);
        using (torch.no_grad())
        {
            var source = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in copy.named_parameters()) p.copy_(source[name]);
        }
        return copy;
    }

    /// <summary>16 pairs in two micro-batches of 8: every optimizer step sees the whole set, so the loss curve is smooth.</summary>
    private static TrainingLoopOptions Options(int steps, double learningRate, string? dir = null) => new()
    {
        Epochs = steps, BatchSize = 8, GradientAccumulationSteps = 2, LearningRate = learningRate, WarmupRatio = 0, WeightDecay = 0.01,
        MaxGradNorm = 1.0, Seed = 7, LogInterval = 1, CheckpointDirectory = dir, CheckpointInterval = dir is null ? 0 : 2,
    };

    /// <summary>Step-DPO on <paramref name="model"/> (cached reference); returns the loss of every optimizer step.</summary>
    private static double[] Train(Qwen2TrainingModel model, List<TokenizedPair> pairs, TrainingLoopOptions options)
    {
        var cache = ReferenceLogProbs.Compute(model, pairs, 8, prefixSharing: true);
        var loop = new TrainingLoop<TokenizedPair>(model, new PreferenceObjective { Beta = 0.1, Cache = cache }, options);
        loop.Run(pairs);
        return loop.History.Select(r => r["loss"]).ToArray();
    }

    private static Dictionary<string, Tensor> Snapshot(Qwen2ForCausalLM model) =>
        model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void ABf16ModelTrainedAtASmallLearningRateMovesItsWeights(bool lora)
    {
        // lr 1e-5 moves a weight by at most about 1e-5 a step; bf16 resolves 1.2e-4 near 0.02 (the init's scale) and 5e-4
        // near a LoRA A entry (≈0.1). AdamW on the bf16 weights themselves leaves all but the near-zero ones where they
        // were (measured: 16% of the full model's matrix entries moved in 12 steps, 2% of LoRA's A in 30), while fp32 masters
        // add the updates up until they show in bf16 (88% and 31%). LoRA's A starts to move only once B (zero at first) has.
        var model = Model(ScalarType.BFloat16);
        if (lora) LoraAdapters.Apply(model, new LoraOptions { Rank = 4, Dropout = 0 });
        var training = new Qwen2TrainingModel(model);
        var trained = lora ? LoraAdapters.Parameters(model).Where((_, i) => i % 2 == 0).ToList()   // the A matrices
                           : training.TrainableParameters().Where(p => p.dim() >= 2).ToList();
        Assert.IsTrue(trained.All(p => p.dtype == ScalarType.BFloat16), "the trained tensors are bf16");
        var before = trained.Select(p => p.detach().clone()).ToList();
        int steps = lora ? 30 : 12;
        Train(training, Pairs(16, 3), Options(steps, 1e-5));
        long changed = 0, total = 0;
        for (int i = 0; i < trained.Count; i++)
        {
            changed += trained[i].ne(before[i]).sum().item<long>();
            total += trained[i].numel();
        }
        double fraction = (double)changed / total;
        Assert.IsGreaterThan(lora ? 0.15 : 0.5, fraction, $"only {changed} of {total} bf16 weights changed in {steps} steps at lr 1e-5");
        Assert.IsTrue(trained.All(p => p.dtype == ScalarType.BFloat16), "the model stays bf16");
    }

    [TestMethod]
    public void ABf16RunTracksTheFp32RunOfTheSameModel()
    {
        // 30 full-batch steps of Step-DPO at lr 1e-5 from the same weights, in fp32 and in bf16; both start at ln 2 (the
        // reference is each model itself) and the fp32 loss falls by ≈2e-3. The bf16 model is its fp32 masters rounded, so
        // its curve falls in stairs: a weight flips to its next bf16 value only once its master has drifted half a bf16
        // step, which at lr 1e-5 takes several steps. Measured: the stairs stay within 2e-4 (10% of the fall) of the fp32
        // curve and the falls agree to 6%; the bounds are twice that. Without fp32 masters most updates round away and
        // the bf16 loss falls by a fraction of the fp32 fall.
        var pairs = Pairs(16, 3);
        var fp32 = Train(new Qwen2TrainingModel(Model(ScalarType.Float32)), pairs, Options(30, 1e-5));
        var bf16 = Train(new Qwen2TrainingModel(Model(ScalarType.BFloat16)), pairs, Options(30, 1e-5));
        Assert.HasCount(30, fp32);
        Assert.AreEqual(Math.Log(2), fp32[0], 1e-6);
        Assert.AreEqual(Math.Log(2), bf16[0], 1e-3);
        double Fall(double[] curve) => curve[0] - curve[^5..].Average();
        double fall32 = Fall(fp32), fall16 = Fall(bf16);
        double gap = fp32.Zip(bf16, (a, b) => Math.Abs(a - b)).Max();
        string curves = $"fp32 {string.Join(" ", fp32.Select(x => x.ToString("F5")))}\nbf16 {string.Join(" ", bf16.Select(x => x.ToString("F5")))}";
        Assert.IsGreaterThan(1e-3, fall32, "the fp32 run must learn for the comparison to mean anything\n" + curves);
        Assert.AreEqual(1.0, fall16 / fall32, 0.12, $"loss fall over 30 steps: bf16 {fall16:G4}, fp32 {fall32:G4}\n{curves}");
        Assert.IsLessThan(0.33 * fall32, gap, $"largest gap between the curves {gap:G3}\n{curves}");
    }

    [TestMethod]
    public void ABf16RunResumedAfterCancellationEndsWithTheUninterruptedRunsWeightsBitForBit()
    {
        var pairs = Pairs(16, 4);
        var straight = Model(ScalarType.BFloat16);
        Train(new Qwen2TrainingModel(straight), pairs, Options(6, 1e-5));

        var dir = Directory.CreateTempSubdirectory("stepdpo-bf16-resume-").FullName;
        try
        {
            using var cts = new CancellationTokenSource();
            var o = Options(6, 1e-5, dir);
            o.CancellationToken = cts.Token;
            o.Progress = new Sync(p => { if (p.Step == 3) cts.Cancel(); });
            Assert.ThrowsExactly<OperationCanceledException>(() => Train(new Qwen2TrainingModel(Model(ScalarType.BFloat16)), pairs, o));
            Assert.IsTrue(File.Exists(Path.Combine(dir, TrainingLoop<TokenizedPair>.LatestName, MixedPrecisionAdamW.MastersFile)), "the checkpoint holds the fp32 masters");

            var resumed = Model(ScalarType.BFloat16);
            var log = new List<string>();
            o = Options(6, 1e-5, dir);
            o.Log = log.Add;
            Train(new Qwen2TrainingModel(resumed), pairs, o);
            Assert.IsTrue(log.Any(l => l.StartsWith("Resumed from checkpoint at step 3/", StringComparison.Ordinal)), string.Join("\n", log));
            var a = Snapshot(straight);
            var b = Snapshot(resumed);
            foreach (var (name, t) in a)
            {
                Assert.AreEqual(ScalarType.BFloat16, b[name].dtype, name);
                Assert.IsTrue(t.equal(b[name]).all().item<bool>(), $"{name} differs after resume");
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void ABf16CheckpointWithoutMasterWeightsIsRefusedNamingWhy()
    {
        // What a bf16 run of an earlier version left: bf16 AdamW state and no masters. Resuming it would silently lose the
        // fp32 state, so the run identity differs.
        var pairs = Pairs(16, 5);
        var dir = Directory.CreateTempSubdirectory("stepdpo-bf16-old-").FullName;
        try
        {
            Train(new Qwen2TrainingModel(Model(ScalarType.BFloat16)), pairs, Options(1, 1e-5, dir));
            var latest = Path.Combine(dir, TrainingLoop<TokenizedPair>.LatestName);
            File.Delete(Path.Combine(latest, MixedPrecisionAdamW.MastersFile));
            var statePath = Path.Combine(latest, "state.json");
            var state = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(statePath))!;
            state["Identity"]!.AsObject().Remove("optimizer");
            File.WriteAllText(statePath, state.ToJsonString());

            var e = Assert.ThrowsExactly<InvalidOperationException>(() => Train(new Qwen2TrainingModel(Model(ScalarType.BFloat16)), pairs, Options(1, 1e-5, dir)));
            StringAssert.Contains(e.Message, "optimizer: (none) → " + TrainingLoop<TokenizedPair>.MasterWeightsIdentity);
        }
        finally { Directory.Delete(dir, true); }
    }

    // fp32: the optimizer is exactly a plain AdamW.

    /// <summary>A few steps of DPO on the toy model with two micro-batches a step, the gradient clipped at a norm it exceeds.</summary>
    private static void Steps(ToyLanguageModel model, Action zero, Action afterBackward, Func<double, double> step)
    {
        var pairs = TrainingLoopTests.Pairs(12, 9);
        var objective = new PreferenceObjective { Beta = 0.4, ReferenceModel = ToyLanguageModel.Create(3, dropout: 0) };
        var norms = new List<double>();
        for (int s = 0; s < 6; s++)
        {
            zero();
            for (int m = 0; m < 2; m++)
            {
                using var scope = torch.NewDisposeScope();
                var idx = Enumerable.Range(s % 2 * 6 + m * 3, 3).ToArray();
                var (loss, _, _) = objective.Compute(model, idx.Select(i => pairs[i]).ToArray(), idx);
                (loss / KeptScalars.Num(2)).backward();
                afterBackward();
            }
            norms.Add(step(1e-2 * (1 + s % 3)));
        }
        Assert.IsTrue(norms.Any(n => n > 0.05), "clipping must act in some step: " + string.Join(", ", norms));
    }

    [TestMethod]
    public void AnFp32ModelTrainsBitForBitAsWithAPlainAdamW()
    {
        // The plain path as the loop ran it before master weights: TorchSharp's AdamW, groups with decay on matrices only,
        // clip, step. The same weights after six steps, and the same bytes of saved state (old checkpoints still resume).
        var plain = ToyLanguageModel.Create(3, dropout: 0);
        var trainable = plain.TrainableParameters().ToList();
        var groups = new List<AdamW.ParamGroup>
        {
            new(trainable.Where(p => p.dim() >= 2), new AdamW.Options { LearningRate = 1e-2, weight_decay = 0.01 }),
            new(trainable.Where(p => p.dim() < 2), new AdamW.Options { LearningRate = 1e-2, weight_decay = 0 }),
        };
        var plainState = new MemoryStream();
        using (var adamW = torch.optim.AdamW(groups, 1e-2, weight_decay: 0.01))
        {
            Steps(plain, adamW.zero_grad, () => { }, lr =>
            {
                double norm = nn.utils.clip_grad_norm_(trainable, 0.05);
                foreach (var g in adamW.ParamGroups) g.LearningRate = lr;
                adamW.step();
                return norm;
            });
            using var w = new BinaryWriter(plainState, System.Text.Encoding.UTF8, leaveOpen: true);
            adamW.save_state_dict(w);
        }

        var mixed = ToyLanguageModel.Create(3, dropout: 0);
        var dir = Directory.CreateTempSubdirectory("stepdpo-adamw-").FullName;
        try
        {
            using (var optimizer = new MixedPrecisionAdamW(mixed.TrainableParameters().ToList(), 1e-2, 0.01))
            {
                Assert.IsFalse(optimizer.HasMasterWeights, "fp32 parameters need no master");
                Steps(mixed, optimizer.ZeroGrad, optimizer.AccumulateGradients, lr => optimizer.Step(lr, 0.05));
                optimizer.Save(dir);
            }
            AssertSameWeights(plain, mixed);
            CollectionAssert.AreEqual(plainState.ToArray(), File.ReadAllBytes(Path.Combine(dir, MixedPrecisionAdamW.StateFile)), "the saved AdamW state");
            Assert.IsFalse(File.Exists(Path.Combine(dir, MixedPrecisionAdamW.MastersFile)));
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void Fp32MastersOfFp32ParametersChangeNothing()
    {
        // The master mechanics (gradients summed into fp32 masters, AdamW on the masters, copied back) are exact when
        // nothing needs rounding: forced on an fp32 model they give the plain run's weights bit for bit.
        var plain = ToyLanguageModel.Create(3, dropout: 0);
        using (var optimizer = new MixedPrecisionAdamW(plain.TrainableParameters().ToList(), 1e-2, 0.01))
            Steps(plain, optimizer.ZeroGrad, optimizer.AccumulateGradients, lr => optimizer.Step(lr, 0.05));
        var mastered = ToyLanguageModel.Create(3, dropout: 0);
        using (var optimizer = new MixedPrecisionAdamW(mastered.TrainableParameters().ToList(), 1e-2, 0.01, needsMaster: _ => true))
        {
            Assert.IsTrue(optimizer.HasMasterWeights);
            Steps(mastered, optimizer.ZeroGrad, optimizer.AccumulateGradients, lr => optimizer.Step(lr, 0.05));
        }
        AssertSameWeights(plain, mastered);
    }

    private static void AssertSameWeights(ToyLanguageModel expected, ToyLanguageModel actual)
    {
        var a = expected.Snapshot();
        var b = actual.Snapshot();
        bool moved = false;
        var initial = ToyLanguageModel.Create(3, dropout: 0).Snapshot();
        foreach (var (name, t) in a)
        {
            Assert.IsTrue(t.equal(b[name]).all().item<bool>(), $"{name} differs");
            moved |= !t.equal(initial[name]).all().item<bool>();
        }
        Assert.IsTrue(moved, "training must have moved the weights");
    }

    private sealed class Sync(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
