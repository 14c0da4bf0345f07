using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

[TestClass]
public sealed class MemoryDisciplineTests
{
    [ClassInitialize]
    public static void ClassInit(TestContext _) => SingleThread.Enter();

    [ClassCleanup]
    public static void ClassDone() => SingleThread.Exit();

    [TestMethod]
    public void LiveTensorCountDoesNotGrowOverManyTrainingSteps()
    {
        // Full fine-tuning steps, LoRA steps with checkpointing, and generation all run under per-step scopes.
        using var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: 32, hidden: 16, layers: 2, heads: 2, kvHeads: 1, intermediate: 32), ScalarType.Float32, seed: 1);
        using var lora = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: 32, hidden: 16, layers: 2, heads: 2, kvHeads: 1, intermediate: 32), ScalarType.Float32, seed: 2);
        LoraAdapters.Apply(lora, new LoraOptions { Rank = 2, Dropout = 0.1 });
        lora.GradientCheckpointing = true;
        var optFull = torch.optim.AdamW(model.parameters(), lr: 1e-3);
        var optLora = torch.optim.AdamW(LoraAdapters.Parameters(lora), lr: 1e-3);
        var generator = new TextGenerator(model);
        var ids = torch.randint(0, 32, new long[] { 4, 12 }).DetachFromDisposeScope();
        var targets = torch.randint(0, 32, new long[] { 4, 12 }).DetachFromDisposeScope();
        model.train(); lora.train();

        const int Steps = 1000; // the issue asks for 1,000 steps
        var live = new long[Steps];
        float firstLoss = 0, lastLoss = 0;
        for (int i = 0; i < Steps; i++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                var m = i % 2 == 0 ? model : lora;
                var opt = i % 2 == 0 ? optFull : optLora;
                opt.zero_grad();
                var loss = -m.TokenLogProbs(ids, targets).mean();
                loss.backward();
                opt.step();
                if (i == 0) firstLoss = loss.item<float>();
                if (i == Steps - 2) lastLoss = loss.item<float>();
                if (i % 50 == 49) generator.Generate(new[] { new[] { 1, 2 }, new[] { 3 } }, new GenerationOptions { MaxNewTokens = 4, Temperature = 1, Seed = i });
            }
            live[i] = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        }
        Assert.IsLessThan(firstLoss, lastLoss, "training should make progress");
        // After the optimizers have created their state (first two steps), the count is flat.
        Assert.AreEqual(live[9], live[Steps - 1], $"live tensors grew from {live[9]} to {live[Steps - 1]}");
        Assert.AreEqual(live[9], live.Skip(9).Max());
        ids.Dispose(); targets.Dispose();
    }
}
