using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Tests.Modeling;
using TorchSharp;

namespace Microsoft.ML.StepDpo.Tests.Sampling;

/// <summary>
/// A request's samples from the local model depend on the request only: alone, among other requests in any order, and
/// at any batch size they are the same text.
/// </summary>
[TestClass]
public sealed class BatchInvariantSamplingTests
{
    [ClassInitialize]
    public static void ClassInit(TestContext _) => SingleThread.Enter();

    [ClassCleanup]
    public static void ClassDone() => SingleThread.Exit();

    private static readonly ByteLevelBpeTokenizer s_tokenizer = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);

    // A random (scrambled) fp64 Qwen2 over the character vocabulary: its samples are varied text.
    private static Qwen2ForCausalLM NewModel()
    {
        var m = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: s_tokenizer.VocabularySize, hidden: 32, layers: 2, heads: 4, kvHeads: 2), torch.ScalarType.Float64, seed: 21);
        ModelTestUtil.Scramble(m, 21, std: 0.4);
        return m;
    }

    private static List<CompletionRequest> Requests() => Enumerable.Range(0, 14).Select(i => new CompletionRequest(
        $"problem {i}: {new string('x', i * 3)}", i % 2 == 0 ? "Let's think step by step.\nStep 1:" : $"Step {i}:", 1 + i % 5,
        new SamplingSettings { Temperature = 0.9, TopP = 0.95, MaxNewTokens = 6 + 2 * i, Seed = 40 + i })).ToList();

    private static async Task<List<IReadOnlyList<string>>> Run(Qwen2ForCausalLM model, IReadOnlyList<CompletionRequest> requests, int maxBatchRows, bool oneAtATime, bool reversed)
    {
        using var source = new LocalModelCompletionSource(model, s_tokenizer, BigramModel.Template, maxBatchRows);
        var results = new IReadOnlyList<string>[requests.Count];
        var order = Enumerable.Range(0, requests.Count).ToList();
        if (reversed) order.Reverse();
        if (oneAtATime)
        {
            foreach (int i in order) results[i] = await source.CompleteAsync(requests[i]);
        }
        else
        {
            var tasks = order.Select(i => (i, source.CompleteAsync(requests[i]))).ToList();
            foreach (var (i, task) in tasks) results[i] = await task;
        }
        return results.ToList();
    }

    [TestMethod]
    public async Task ARequestGetsTheSameSamplesAloneAndInAnyBatch()
    {
        using var model = NewModel();
        var requests = Requests();
        var together = await Run(model, requests, maxBatchRows: 64, oneAtATime: false, reversed: false);
        var alone = await Run(model, requests, maxBatchRows: 64, oneAtATime: true, reversed: false);
        var small = await Run(model, requests, maxBatchRows: 3, oneAtATime: false, reversed: true);
        for (int i = 0; i < requests.Count; i++)
        {
            Assert.HasCount(requests[i].Count, together[i]);
            CollectionAssert.AreEqual(alone[i].ToList(), together[i].ToList(), $"request {i}: alone vs together");
            CollectionAssert.AreEqual(alone[i].ToList(), small[i].ToList(), $"request {i}: alone vs 3-row batches in reverse order");
        }
        // They are samples: the rows of a request differ.
        Assert.IsTrue(together.Where(r => r.Count > 1).All(r => r.Distinct().Count() > 1), string.Join(" | ", together.SelectMany(r => r)));
    }
}
