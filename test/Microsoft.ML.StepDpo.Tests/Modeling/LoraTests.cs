using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Tests.Modeling.ModelTestUtil;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

[TestClass]
public sealed class LoraTests
{
    [ClassInitialize]
    public static void ClassInit(TestContext _) => SingleThread.Enter();

    [ClassCleanup]
    public static void ClassDone() => SingleThread.Exit();

    private static readonly Tensor Ids = torch.tensor(new long[] { 3, 1, 4, 1, 5, 9, 2, 6 }).unsqueeze(0).DetachFromDisposeScope();
    private static readonly Tensor Targets = torch.tensor(new long[] { 1, 4, 1, 5, 9, 2, 6, 5 }).unsqueeze(0).DetachFromDisposeScope();

    /// <summary>A model with adapters trained a few steps, so that B ≠ 0 and the adapters matter.</summary>
    private static Qwen2ForCausalLM Trained(LoraOptions options, Tensor? baseLogits = null)
    {
        var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(tied: false), ScalarType.Float32, seed: 8);
        Scramble(model, 8, std: 0.2);
        LoraAdapters.Apply(model, options);
        var opt = torch.optim.AdamW(LoraAdapters.Parameters(model), lr: 0.05);
        model.train();
        for (int i = 0; i < 5; i++)
        {
            using var scope = torch.NewDisposeScope();
            opt.zero_grad();
            (-model.TokenLogProbs(Ids, Targets).mean()).backward();
            opt.step();
        }
        model.eval();
        return model;
    }

    [TestMethod]
    public void DisabledAdaptersGiveExactlyTheBaseModel()
    {
        using var scope = torch.NewDisposeScope();
        using var baseModel = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(tied: false), ScalarType.Float32, seed: 8);
        Scramble(baseModel, 8, std: 0.2);
        var baseLogits = baseModel.Forward(Ids);
        using var model = Trained(new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0.1 });

        // Base frozen: the base weights did not move during training.
        foreach (var (name, p) in model.named_parameters().Where(p => !p.name.Contains("lora_")))
        {
            Assert.IsFalse(p.requires_grad, name);
            Assert.IsTrue(p.equal(baseModel.named_parameters().Single(q => q.name == name).parameter).all().item<bool>(), name);
        }
        Assert.AreEqual(2 * 7 * 2, LoraAdapters.Parameters(model).Count());
        var adapted = model.Forward(Ids);
        Assert.IsGreaterThan(1e-3, MaxAbsDiff(adapted, baseLogits), "trained adapters should change the output");
        using (LoraAdapters.Disable(model))
            Assert.IsTrue(model.Forward(Ids).equal(baseLogits).all().item<bool>(), "disabled adapters must give the base outputs exactly");
        Assert.IsTrue(model.Forward(Ids).equal(adapted).all().item<bool>());
    }

    [TestMethod]
    [DataRow(2.0, DisplayName = "scaling 2 (the default 16/8)")]
    [DataRow(0.75, DisplayName = "scaling 0.75")]
    public void AdaptedProjectionIsBasePlusScaledLowRankProductWithItsGradients(double scaling)
    {
        // The plain path, spelled out: x·Wᵀ + b + scaling·((x·Aᵀ)·Bᵀ), differentiated by autograd; fp64, no dropout.
        using var scope = torch.NewDisposeScope();
        var gen = new Generator(9);
        var layer = new LoraLinear(12, 20, hasBias: true, ScalarType.Float64, torch.CPU);
        layer.InitNormal(0.3);
        layer.AddAdapter(rank: 4, alpha: 4 * scaling, dropout: 0);
        using (torch.no_grad()) layer.LoraB!.copy_(torch.randn(20, 4, dtype: ScalarType.Float64, generator: gen));
        var x = torch.randn(new long[] { 3, 5, 12 }, dtype: ScalarType.Float64, generator: gen).requires_grad_(true);
        var g = torch.randn(new long[] { 3, 5, 20 }, dtype: ScalarType.Float64, generator: gen);

        var y = layer.forward(x);
        y.backward(new[] { g });
        var (dx, dA, dB) = (x.grad!.clone(), layer.LoraA!.grad!.clone(), layer.LoraB!.grad!.clone());

        var x2 = x.detach().requires_grad_(true);
        var a = layer.LoraA!.detach().requires_grad_(true);
        var b = layer.LoraB!.detach().requires_grad_(true);
        var plain = nn.functional.linear(x2, layer.Weight.detach(), layer.Bias!.detach()) + nn.functional.linear(nn.functional.linear(x2, a), b) * scaling;
        plain.backward(new[] { g });

        CollectionAssert.AreEqual(plain.shape, y.shape);
        Assert.IsLessThan(1e-12, MaxAbsDiff(y, plain));
        Assert.IsLessThan(1e-12, MaxAbsDiff(dx, x2.grad!));
        Assert.IsLessThan(1e-12, MaxAbsDiff(dA, a.grad!));
        Assert.IsLessThan(1e-12, MaxAbsDiff(dB, b.grad!));
    }

    [TestMethod]
    public void MergeFoldsTheAdapterIntoTheBase()
    {
        using var scope = torch.NewDisposeScope();
        using var model = Trained(new LoraOptions { Rank = 2, Alpha = 4, Dropout = 0, TargetModules = new[] { "q_proj", "v_proj", "down_proj" } });
        var adapted = model.Forward(Ids);
        LoraAdapters.Merge(model);
        Assert.IsFalse(LoraAdapters.HasAdapters(model));
        Assert.IsFalse(model.named_parameters().Any(p => p.name.Contains("lora_")));
        Assert.IsLessThan(1e-5, MaxAbsDiff(model.Forward(Ids), adapted));
    }

    [TestMethod]
    public void AdaptersRoundTripInThePeftLayout()
    {
        using var scope = torch.NewDisposeScope();
        var dir = Directory.CreateTempSubdirectory("stepdpo-lora-").FullName;
        try
        {
            using var model = Trained(new LoraOptions { Rank = 4, Alpha = 16, Dropout = 0.05, TargetModules = new[] { "q_proj", "k_proj", "o_proj", "up_proj" } });
            var adapted = model.Forward(Ids);
            LoraAdapters.Save(model, dir, "my-base");
            var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, LoraAdapters.ConfigFile)))!;
            Assert.AreEqual("LORA", cfg["peft_type"]!.GetValue<string>());
            Assert.AreEqual(4, cfg["r"]!.GetValue<int>());
            Assert.AreEqual(16.0, cfg["lora_alpha"]!.GetValue<double>());
            using (var r = new SafeTensors.Reader(Path.Combine(dir, LoraAdapters.WeightsFile)))
            {
                Assert.IsTrue(r.Entries.ContainsKey("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
                CollectionAssert.AreEqual(new long[] { 4, 32 }, r.Entries["base_model.model.model.layers.1.mlp.up_proj.lora_A.weight"].Shape);
                CollectionAssert.AreEqual(new long[] { 64, 4 }, r.Entries["base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"].Shape);
                Assert.AreEqual(2 * 4 * 2, r.Entries.Count);
            }

            using var fresh = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(tied: false), ScalarType.Float32, seed: 8);
            Scramble(fresh, 8, std: 0.2);
            var options = LoraAdapters.Load(fresh, dir);
            CollectionAssert.AreEquivalent(new[] { "q_proj", "k_proj", "o_proj", "up_proj" }, options.TargetModules.ToArray());
            fresh.eval();
            Assert.IsTrue(fresh.Forward(Ids).equal(adapted).all().item<bool>());

            using var wrongRank = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(tied: false), ScalarType.Float32, seed: 8);
            LoraAdapters.Apply(wrongRank, new LoraOptions { Rank = 2, TargetModules = new[] { "q_proj", "k_proj", "o_proj", "up_proj" } });
            var e = Assert.ThrowsExactly<InvalidDataException>(() => LoraAdapters.Load(wrongRank, dir));
            StringAssert.Contains(e.Message, "has shape [4, 32] but the model expects [2, 32]");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
