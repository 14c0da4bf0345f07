using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Training;

/// <summary>The trainer's fast path (prefix sharing + cached reference) against the plain path (two full
/// sequences per pair, live frozen reference model) on the real Qwen2 architecture.</summary>
[TestClass]
public sealed class Qwen2PreferenceExactnessTests
{
    private static List<TokenizedPair> Pairs(int vocab)
    {
        var rng = new Random(21);
        int[] R(int k) => Enumerable.Range(0, k).Select(_ => rng.Next(1, vocab)).ToArray();
        var pairs = new List<TokenizedPair>();
        for (int i = 0; i < 5; i++)
        {
            var ctx = R(rng.Next(6, 20));
            pairs.Add(new(ctx.Concat(R(rng.Next(2, 8))).ToArray(), ctx.Length, ctx.Concat(R(rng.Next(2, 8))).ToArray(), ctx.Length));
        }
        // A BPE seam: the last context token differs between the sides.
        var shared = R(9);
        pairs.Add(new(shared.Append(3).Concat(R(4)).ToArray(), 10, shared.Append(4).Concat(R(5)).ToArray(), 10));
        return pairs;
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void FastPathEqualsPlainPath(bool tied)
    {
        var config = Qwen2Config.Tiny(vocab: 40, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, tied: tied);
        var policy = Qwen2ForCausalLM.CreateRandom(config, ScalarType.Float64, seed: 5);
        var frozen = Qwen2ForCausalLM.CreateRandom(config, ScalarType.Float64, seed: 5);
        using (torch.no_grad())
            foreach (var p in policy.parameters()) p.add_(torch.randn_like(p) * 0.02); // policy ≠ reference
        var model = new Qwen2TrainingModel(policy);
        var pairs = Pairs(40);
        var idx = Enumerable.Range(0, pairs.Count).ToArray();
        var cache = ReferenceLogProbs.Compute(new Qwen2TrainingModel(frozen), pairs, batchSize: 4, prefixSharing: true);

        (double Loss, Dictionary<string, Tensor> Grads) Run(PreferenceObjective objective)
        {
            policy.zero_grad();
            var (loss, _, _) = objective.Compute(model, pairs, idx);
            loss.backward();
            var grads = policy.named_parameters().GroupBy(p => p.name).ToDictionary(g => g.Key, g => g.First().parameter.grad!.clone());
            return (loss.item<double>(), grads);
        }

        var plain = Run(new PreferenceObjective { Beta = 0.4, PrefixSharing = false, ReferenceModel = new Qwen2TrainingModel(frozen) });
        var fast = Run(new PreferenceObjective { Beta = 0.4, PrefixSharing = true, Cache = cache });
        Assert.AreNotEqual(Math.Log(2), plain.Loss, 1e-6, "policy and reference must differ for the test to mean anything");
        Assert.AreEqual(plain.Loss, fast.Loss, 1e-5 * Math.Abs(plain.Loss));
        foreach (var (name, g) in plain.Grads)
        {
            double scale = g.abs().max().item<double>();
            double diff = (g - fast.Grads[name]).abs().max().item<double>();
            Assert.IsLessThanOrEqualTo(1e-5 * Math.Max(scale, 1e-12), diff, $"gradient of {name}: max diff {diff} vs scale {scale}");
        }
    }

    [TestMethod]
    public void TiedHeadIsOneTrainableParameter()
    {
        var model = new Qwen2TrainingModel(Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(tied: true), seed: 1));
        var ps = model.TrainableParameters().ToList();
        Assert.AreEqual(ps.Count, ps.Select(p => p.Handle).Distinct().Count());
        var untied = new Qwen2TrainingModel(Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(tied: false), seed: 1));
        Assert.AreEqual(ps.Count + 1, untied.TrainableParameters().Count());
    }
}
