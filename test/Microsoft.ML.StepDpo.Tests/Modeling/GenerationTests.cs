using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Tests.Modeling.ModelTestUtil;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

[TestClass]
public sealed class GenerationTests
{
    [ClassInitialize]
    public static void ClassInit(TestContext _) => SingleThread.Enter();

    [ClassCleanup]
    public static void ClassDone() => SingleThread.Exit();

    // fp64 so that argmax near-ties cannot make padded and unpadded runs differ by rounding.
    private static Qwen2ForCausalLM NewModel(long seed = 1)
    {
        var m = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: 26, hidden: 32, layers: 2, heads: 4, kvHeads: 2), ScalarType.Float64, seed: seed);
        Scramble(m, seed, std: 0.5);
        return m;
    }

    private static string Letters(int[] ids) => new(ids.Select(i => (char)('a' + i)).ToArray());

    private static readonly int[][] Prompts = { new[] { 1, 2, 3 }, new[] { 7, 3, 9, 11, 2, 2, 5 }, new[] { 4 }, new[] { 20, 21, 22, 23, 24 } };

    /// <summary>Greedy decoding by recomputing the whole sequence each step, no cache.</summary>
    private static int[] GreedyByRecompute(Qwen2ForCausalLM model, int[] prompt, int n)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var seq = prompt.ToList();
        for (int i = 0; i < n; i++)
        {
            var logits = model.Forward(torch.tensor(seq.Select(x => (long)x).ToArray()).unsqueeze(0));
            seq.Add((int)logits[0, -1].argmax().item<long>());
        }
        return seq.Skip(prompt.Length).ToArray();
    }

    [TestMethod]
    public void KvCacheGreedyEqualsFullRecomputation()
    {
        using var model = NewModel();
        var gen = new TextGenerator(model);
        foreach (var p in Prompts)
        {
            var cached = gen.Generate(p, new GenerationOptions { MaxNewTokens = 12 });
            CollectionAssert.AreEqual(GreedyByRecompute(model, p, 12), cached.Tokens);
            Assert.AreEqual(StopReason.MaxTokens, cached.Reason);
        }
    }

    [TestMethod]
    public void MixedPromptLengthsInOneBatchEqualOneByOne()
    {
        using var model = NewModel(2);
        var gen = new TextGenerator(model, Letters);
        var batch = gen.Generate(Prompts, new GenerationOptions { MaxNewTokens = 10 });
        Assert.AreEqual(Prompts.Length, batch.Count);
        var distinct = new HashSet<string>();
        for (int i = 0; i < Prompts.Length; i++)
        {
            var alone = gen.Generate(Prompts[i], new GenerationOptions { MaxNewTokens = 10 });
            CollectionAssert.AreEqual(alone.Tokens, batch[i].Tokens, $"prompt {i}");
            Assert.AreEqual(Letters(alone.Tokens), batch[i].Text);
            distinct.Add(batch[i].Text!);
        }
        Assert.IsGreaterThan(1, distinct.Count, "different prompts should give different continuations");
    }

    [TestMethod]
    public void StopStringsAndEosEndEachSequenceOnItsOwn()
    {
        using var model = NewModel(3);
        var gen = new TextGenerator(model, Letters);
        var free = gen.Generate(Prompts, new GenerationOptions { MaxNewTokens = 12 });
        // Stop string: two letters taken from the middle of the first free-running continuation.
        string stop = free[0].Text!.Substring(4, 2);
        int at = free[0].Text!.IndexOf(stop, StringComparison.Ordinal);
        // EOS: the third token of the second continuation.
        int eos = free[1].Tokens[2];
        int eosAt = Array.IndexOf(free[1].Tokens, eos);
        var streamed = new List<(int, int)>();
        var stopped = gen.Generate(Prompts, new GenerationOptions
        {
            MaxNewTokens = 12, StopStrings = new[] { stop }, OnToken = (b, t) => streamed.Add((b, t)),
        });
        Assert.AreEqual(StopReason.StopString, stopped[0].Reason);
        Assert.AreEqual(stop, stopped[0].StopString);
        Assert.AreEqual(free[0].Text![..at], stopped[0].Text);
        CollectionAssert.AreEqual(free[0].Tokens.Take(at + stop.Length).ToArray(), stopped[0].Tokens);
        for (int b = 0; b < Prompts.Length; b++)
            CollectionAssert.AreEqual(stopped[b].Tokens, streamed.Where(s => s.Item1 == b).Select(s => s.Item2).ToArray());

        var withEos = gen.Generate(Prompts[1], new GenerationOptions { MaxNewTokens = 12, EosIds = new[] { eos } });
        Assert.AreEqual(StopReason.EndOfSequence, withEos.Reason);
        CollectionAssert.AreEqual(free[1].Tokens.Take(eosAt + 1).ToArray(), withEos.Tokens);
        Assert.AreEqual(free[1].Text![..eosAt], withEos.Text);
    }

    [TestMethod]
    public void SeededSamplingIsReproducibleAndFiltersWork()
    {
        using var model = NewModel(4);
        var gen = new TextGenerator(model);
        var o = new GenerationOptions { MaxNewTokens = 16, Temperature = 1.0, Seed = 42 };
        var a = gen.Generate(Prompts, o);
        var b = gen.Generate(Prompts, o);
        var c = gen.Generate(Prompts, o with { Seed = 43 });
        for (int i = 0; i < Prompts.Length; i++) CollectionAssert.AreEqual(a[i].Tokens, b[i].Tokens);
        Assert.IsTrue(Enumerable.Range(0, Prompts.Length).Any(i => !a[i].Tokens.SequenceEqual(c[i].Tokens)));

        // top-k 1 and a tiny top-p both reduce sampling to greedy.
        var greedy = gen.Generate(Prompts, new GenerationOptions { MaxNewTokens = 8 });
        var k1 = gen.Generate(Prompts, new GenerationOptions { MaxNewTokens = 8, Temperature = 1.5, TopK = 1, Seed = 5 });
        var p0 = gen.Generate(Prompts, new GenerationOptions { MaxNewTokens = 8, Temperature = 1.5, TopP = 1e-6, Seed = 5 });
        for (int i = 0; i < Prompts.Length; i++)
        {
            CollectionAssert.AreEqual(greedy[i].Tokens, k1[i].Tokens);
            CollectionAssert.AreEqual(greedy[i].Tokens, p0[i].Tokens);
        }
    }

    [TestMethod]
    public void SampleRespectsTopKAndTopP()
    {
        using var scope = torch.NewDisposeScope();
        using var rng = new Generator(7);
        // probabilities 0.5, 0.3, 0.15, 0.05 (ids 2, 0, 3, 1)
        var logits = torch.tensor(new[] { 0.3, 0.05, 0.5, 0.15 }).log().unsqueeze(0).expand(4000, 4);
        var counts = new int[4];
        void Count(Tensor t) { foreach (var x in t.data<long>()) counts[x]++; }
        Count(TextGenerator.Sample(logits, new GenerationOptions { Temperature = 1, TopK = 2 }, rng));
        Assert.AreEqual(0, counts[1] + counts[3]);
        Assert.AreEqual(0.5 / 0.8, counts[2] / 4000.0, 0.03);
        Array.Clear(counts);
        Count(TextGenerator.Sample(logits, new GenerationOptions { Temperature = 1, TopP = 0.9 }, rng));   // keeps 0.5+0.3+0.15
        Assert.AreEqual(0, counts[1]);
        Assert.AreEqual(0.15 / 0.95, counts[3] / 4000.0, 0.03);
        Array.Clear(counts);
        Count(TextGenerator.Sample(logits, new GenerationOptions { Temperature = 1 }, rng));
        Assert.AreEqual(0.05, counts[1] / 4000.0, 0.015);
    }

    /// <summary>
    /// The context bounds generation: a prompt that does not fit is refused with the numbers (instead of attention and
    /// a KV cache that grow with any input), and rows stop where the longest prompt reaches the context.
    /// </summary>
    [TestMethod]
    public void TheContextBoundsPromptsAndGeneration()
    {
        var config = Qwen2Config.Tiny(vocab: 26, hidden: 32, layers: 2, heads: 4, kvHeads: 2) with { MaxPositionEmbeddings = 16 };
        using var model = Qwen2ForCausalLM.CreateRandom(config, ScalarType.Float64, seed: 3);
        var generator = new TextGenerator(model);
        var e = Assert.ThrowsExactly<ArgumentException>(() => generator.Generate(Enumerable.Repeat(1, 16).ToArray(), new GenerationOptions { MaxNewTokens = 4 }));
        StringAssert.Contains(e.Message, "16 tokens");
        StringAssert.Contains(e.Message, "max_position_embeddings");

        var results = generator.Generate(new[] { Enumerable.Repeat(2, 12).ToArray(), new[] { 3, 4 } }, new GenerationOptions { MaxNewTokens = 50 });
        Assert.AreEqual(4, results[0].Tokens.Length, "12 prompt tokens + 4 new fill the context of 16");
        Assert.AreEqual(4, results[1].Tokens.Length, "the batch stops where its longest prompt reaches the context");
        Assert.AreEqual(StopReason.MaxTokens, results[0].Reason);
    }
}
