using System.Diagnostics;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace StepDpo.Tools;

/// <summary>
/// Step-DPO training throughput, plain path vs. fast path, in one run on Step-DPO-shaped batches
/// (prefix ≈ 256 tokens, steps ≈ 40 tokens, ~11M-parameter Qwen2): plain = every pair as two full sequences
/// with a live frozen reference model; fast = prefix sharing + reference log-probs computed once (their cost
/// is charged to the fast path, as if training one epoch). Also the largest relative loss difference between
/// the two paths on the same weights and batches.
/// </summary>
internal static class StepDpoBenchmark
{
    public static void Run(Dictionary<string, object> r, bool quick)
    {
        var config = new Qwen2Config
        {
            VocabSize = 8192, HiddenSize = 384, IntermediateSize = 1024, NumHiddenLayers = 5, NumAttentionHeads = 6, NumKeyValueHeads = 2,
            RopeTheta = 10000, TieWordEmbeddings = true, MaxPositionEmbeddings = 2048, TorchDtype = "float32",
        };
        int batch = 4, steps = quick ? 2 : 4;
        var rng = new Random(7);
        int[] R(int n) => Enumerable.Range(0, n).Select(_ => rng.Next(1, config.VocabSize)).ToArray();
        var pairs = Enumerable.Range(0, batch * (steps + 1)).Select(_ =>
        {
            var prefix = R(rng.Next(240, 273));
            return new TokenizedPair(prefix.Concat(R(rng.Next(32, 49))).ToArray(), prefix.Length, prefix.Concat(R(rng.Next(32, 49))).ToArray(), prefix.Length);
        }).ToList();

        using var policy = Qwen2ForCausalLM.CreateRandom(config, ScalarType.Float32, seed: 1);
        using var frozen = StepDpoTrainer.Clone(policy);
        long n = policy.parameters().Sum(p => p.numel());
        var model = new Qwen2TrainingModel(policy);
        var frozenView = new Qwen2TrainingModel(frozen);

        // Loss agreement on the same weights and batches; move the policy off the reference first, or both
        // paths would trivially give log 2.
        using (torch.no_grad())
            foreach (var p in policy.parameters()) p.add_(torch.randn_like(p) * 0.01);
        var cacheSw = Stopwatch.StartNew();
        var cache = ReferenceLogProbs.Compute(frozenView, pairs, batch, prefixSharing: true);
        double cacheSeconds = cacheSw.Elapsed.TotalSeconds;
        var plainObjective = new PreferenceObjective { Beta = 0.4, PrefixSharing = false, ReferenceModel = frozenView };
        var fastObjective = new PreferenceObjective { Beta = 0.4, PrefixSharing = true, Cache = cache };
        double maxRel = 0;
        using (torch.no_grad())
        {
            for (int b = 0; b < 2; b++)
            {
                using var scope = torch.NewDisposeScope();
                var idx = Enumerable.Range(b * batch, batch).ToArray();
                var slice = idx.Select(i => pairs[i]).ToArray();
                double a = plainObjective.Compute(model, slice, idx).Loss.item<float>();
                double c = fastObjective.Compute(model, slice, idx).Loss.item<float>();
                maxRel = Math.Max(maxRel, Math.Abs(a - c) / Math.Max(Math.Abs(a), 1e-12));
            }
        }

        double Throughput(PreferenceObjective objective)
        {
            using var opt = torch.optim.AdamW(model.TrainableParameters(), lr: 1e-5);
            model.SetTraining(true);
            var sw = new Stopwatch();
            for (int s = 0; s <= steps; s++)
            {
                if (s == 1) sw.Start(); // step 0 warms up
                using var scope = torch.NewDisposeScope();
                var idx = Enumerable.Range(s * batch, batch).ToArray();
                opt.zero_grad();
                objective.Compute(model, idx.Select(i => pairs[i]).ToArray(), idx).Loss.backward();
                opt.step();
            }
            return (double)batch * steps / sw.Elapsed.TotalSeconds;
        }

        double plain = Throughput(plainObjective);
        double fastTrainOnly = Throughput(fastObjective);
        // Charge the reference pass (one forward over every pair, once per run) to the fast path, spread over
        // the trainer's default 4 epochs; the 1-epoch figure is the worst case.
        double fast = 1.0 / (1.0 / fastTrainOnly + cacheSeconds / (pairs.Count * 4.0));
        double fastOneEpoch = 1.0 / (1.0 / fastTrainOnly + cacheSeconds / pairs.Count);
        r["stepdpo_params"] = n;
        r["stepdpo_naive_pairs_per_s"] = plain;
        r["stepdpo_optimized_pairs_per_s"] = fast;
        r["stepdpo_optimized_train_only_pairs_per_s"] = fastTrainOnly;
        r["stepdpo_optimized_one_epoch_pairs_per_s"] = fastOneEpoch;
        r["prefix_sharing_speedup_one_epoch"] = fastOneEpoch / plain;
        r["prefix_sharing_speedup"] = fast / plain;
        r["loss_max_rel_diff"] = maxRel;
        Console.WriteLine($"Step-DPO {n / 1e6:F1}M params, prefix≈256, steps≈40, batch {batch}: plain {plain:F2} pairs/s, " +
                          $"fast {fast:F2} pairs/s over 4 epochs (1 epoch {fastOneEpoch:F2}, train only {fastTrainOnly:F2}), speedup {fast / plain:F2}x, loss max rel diff {maxRel:E1}");
    }
}
