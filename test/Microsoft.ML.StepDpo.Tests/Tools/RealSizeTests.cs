using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Tests.Tokenization;
using StepDpo.Tools.RealCheckpoints;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Tools;

/// <summary>
/// Real-size checks, opt-in: they write GBs (0.5B: 1 GB; 7B: 15.2 GB) and need most of a 24 GiB machine. Category
/// "RealSize"; they run only with STEPDPO_REAL_SIZE=1 (e.g. <c>STEPDPO_REAL_SIZE=1 dotnet test --filter TestCategory=RealSize</c>)
/// and are inconclusive otherwise, so the default test run stays fast. bench --sections real measures the same paths.
/// </summary>
[TestClass]
public sealed class RealSizeTests
{
    private static void RequireOptIn()
    {
        if (Environment.GetEnvironmentVariable("STEPDPO_REAL_SIZE") != "1")
            Assert.Inconclusive("Real-size test: set STEPDPO_REAL_SIZE=1 to run it (writes GBs of weights, needs most of 24 GiB).");
    }

    private static string NewFolder() => Path.Combine(Path.GetTempPath(), "stepdpo-realsize-" + Guid.NewGuid().ToString("N"));

    [TestMethod]
    [TestCategory("RealSize")]
    public void Qwen25_0_5BFolderLoadsAndGeneratesWithTheKvCache()
    {
        RequireOptIn();
        string dir = NewFolder();
        try
        {
            HubCheckpointWriter.Write(HubShape.Find("qwen2.5-0.5b"), ScalarType.BFloat16, 1, dir, TokenizerFixtures.QwenDirectory);
            Assert.AreEqual(988_097_824L, new FileInfo(Path.Combine(dir, "model.safetensors")).Length, "the hub's file size");
            var (model, tok) = ModelFolder.Load(dir);
            using (model)
            {
                Assert.AreEqual(494_032_768L, model.parameters().Sum(p => p.numel()));
                var prompt = tok.Encode(Microsoft.ML.StepDpo.Text.PromptTemplate.Qwen2Boxed.Build("What is 2+3?", ""));
                var gen = new TextGenerator(model, ids => tok.Decode(ids));
                var greedy = gen.Generate(new[] { prompt, prompt }, new GenerationOptions { MaxNewTokens = 4, Temperature = 0 });
                CollectionAssert.AreEqual(greedy[0].Tokens, greedy[1].Tokens, "the same prompt twice in one batch decodes the same");
                Assert.HasCount(4, greedy[0].Tokens);
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    [TestCategory("RealSize")]
    public void Qwen25Math7BShardedFolderLoadsUntied()
    {
        RequireOptIn();
        string dir = NewFolder();
        try
        {
            HubCheckpointWriter.Write(HubShape.Find("qwen2.5-math-7b"), ScalarType.BFloat16, 1, dir, TokenizerFixtures.QwenDirectory);
            CollectionAssert.AreEqual(new[] { 3.95, 3.86, 3.86, 3.56 },
                Enumerable.Range(1, 4).Select(k => Math.Round(new FileInfo(Path.Combine(dir, $"model-{k:D5}-of-00004.safetensors")).Length / 1e9, 2)).ToArray());
            using var model = ModelCheckpoint.Load(dir);
            Assert.AreEqual(7_615_616_512L, model.parameters().Sum(p => p.numel()));
            Assert.IsFalse(model.Config.TieWordEmbeddings);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }
}
