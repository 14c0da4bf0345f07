using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Tests.Modeling;
using Microsoft.ML.StepDpo.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Tasks;

[TestClass]
public sealed class ArithmeticSftRecipeTests
{
    [ClassInitialize]
    public static void ClassInit(TestContext _) => SingleThread.Enter();

    [ClassCleanup]
    public static void ClassDone() => SingleThread.Exit();

    [TestMethod]
    public void TokenizesPromptThenGoldSolutionThenEos()
    {
        var tok = ArithmeticSftRecipe.CreateTokenizer();
        Assert.AreEqual(ArithmeticTask.Alphabet.Count + 2, tok.VocabularySize, "one token per character, EOS and padding");
        foreach (var p in ArithmeticTask.Generate(ArithmeticTaskOptions.Easy, 20, 1, TaskSplit.Train))
        {
            var s = ArithmeticSftRecipe.Tokenize(tok, p);
            Assert.AreEqual(tok.EosId, s.Ids[^1]);
            Assert.AreEqual(p.Question + "\n", tok.Decode(s.Ids[..s.ResponseStart]));
            Assert.AreEqual(p.Solution, tok.Decode(s.Ids[s.ResponseStart..^1]));
            // The evaluation prompt is the training prompt followed by the forced opening of the solution.
            Assert.AreEqual(p.Question + "\n" + PromptTemplate.StepPreamble, ArithmeticSftRecipe.Prompt.BuildForEvaluation(p.Question));
            Assert.StartsWith(PromptTemplate.StepPreamble, p.Solution);
        }
    }

    [TestMethod]
    public void TrainsATinyModelAndTheSavedFolderReloadsIdentically()
    {
        var tok = ArithmeticSftRecipe.CreateTokenizer();
        var settings = new ArithmeticSftSettings { TrainProblems = 40, HiddenSize = 32, Layers = 1, Heads = 4, KeyValueHeads = 2, IntermediateSize = 64, Seed = 3 };
        settings.Sft.TokensPerBatch = 2048;
        using var model = ArithmeticSftRecipe.Train(settings, tok);
        Assert.AreEqual(tok.EosId, model.Config.EosTokenId);
        string dir = Directory.CreateTempSubdirectory("stepdpo-sft-").FullName;
        try
        {
            ArithmeticSftRecipe.Save(model, tok, dir);
            foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json" })
                Assert.IsTrue(File.Exists(Path.Combine(dir, f)), f);
            var (loaded, loadedTok) = ArithmeticSftRecipe.Load(dir);
            using (loaded)
            {
                string text = "Mia has 12 books. Mia gets 3 more. How many books now?\nLet's think step by step.\nStep 1: 12+3=15.";
                CollectionAssert.AreEqual(tok.Encode(text), loadedTok.Encode(text));
                using var scope = NewDisposeScope();
                var ids = torch.tensor(tok.Encode(text).Select(i => (long)i).ToArray()).unsqueeze(0);
                Assert.AreEqual(0.0, ModelTestUtil.MaxAbsDiff(model.Forward(ids), loaded.Forward(ids)), 0.0);
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
