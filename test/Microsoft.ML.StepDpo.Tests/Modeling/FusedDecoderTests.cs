using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Tests.Modeling.ModelTestUtil;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

/// <summary>
/// The fused float32 decoder against libtorch's forward pass (the plain path it replaces in continuous batching), and
/// its invariances: a sequence's logits are the same bits in any batch, on any number of threads, and whether its
/// prompt runs in one pass, in parts, or one token at a time.
/// </summary>
[TestClass]
public sealed class FusedDecoderTests
{
    [ClassInitialize]
    public static void ClassInit(TestContext _) => SingleThread.Enter();

    [ClassCleanup]
    public static void ClassDone() => SingleThread.Exit();

    private static void RequireKernel()
    {
        if (!PackedWeight.Supported) Assert.Inconclusive("The fused decoder needs AVX-512F; libtorch's ops serve this CPU.");
    }

    // ---- the projection kernel ----

    [TestMethod]
    [DataRow(1, 1, 1, false)]
    [DataRow(7, 33, 5, true)]
    [DataRow(8, 32, 128, false)]
    [DataRow(17, 54, 128, true)]
    [DataRow(40, 70, 384, true)]
    public void PackedProductEqualsTheSumSpelledOut(int m, int n, int k, bool withBias)
    {
        RequireKernel();
        var rnd = new Random(m * 1000 + n * 10 + k);
        float[] Random(int count) => Enumerable.Range(0, count).Select(_ => (float)(rnd.NextDouble() * 2 - 1)).ToArray();
        float[] w = Random(n * k), x = Random(m * k), b = withBias ? Random(n) : Array.Empty<float>();
        using var packed = new PackedWeight(w, n, k, b);
        var y = Multiply(packed, x, m);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double expected = withBias ? b[j] : 0;
                for (int kk = 0; kk < k; kk++) expected += (double)x[i * k + kk] * w[j * k + kk];
                Assert.AreEqual(expected, y[i * n + j], 1e-5 * Math.Max(1, Math.Sqrt(k)), $"y[{i},{j}]");
            }

        // A row alone gives the same bits as in the block of 8 (or the padded tail) it shared.
        for (int i = 0; i < m; i++)
        {
            var alone = Multiply(packed, x.AsSpan(i * k, k).ToArray(), 1);
            CollectionAssert.AreEqual(y.AsSpan(i * n, n).ToArray(), alone, $"row {i} alone");
        }
    }

    private static float[] Multiply(PackedWeight w, float[] x, int m) => w.Multiply(x, m);

    // ---- the forward pass ----

    private const int Vocab = 40;

    /// <summary>Four query heads over two kv heads of 8, the shape most tests here use.</summary>
    private static Qwen2Config Gqa(int layers = 2) => Qwen2Config.Tiny(vocab: Vocab, hidden: 32, layers: layers, heads: 4, kvHeads: 2, intermediate: 48);

    private static Qwen2ForCausalLM NewModel(Qwen2Config config, long seed)
    {
        var m = Qwen2ForCausalLM.CreateRandom(config, ScalarType.Float32, seed: seed);
        Scramble(m, seed, std: 0.3);
        return m;
    }

    // Grouped-query attention with biases (Qwen2), head size 16; no biases, untied head (Llama), head size 8;
    // as many kv heads as heads, head size 32, three layers.
    private static Qwen2Config Config(string name) => name switch
    {
        "qwen2 gqa" => Qwen2Config.Tiny(vocab: Vocab, hidden: 32, layers: 2, heads: 2, kvHeads: 1, intermediate: 48),
        "llama untied" => Llama(Vocab) with { HiddenSize = 32, NumAttentionHeads = 4, NumKeyValueHeads = 2, IntermediateSize = 40 },
        _ => Qwen2Config.Tiny(vocab: Vocab, hidden: 64, layers: 3, heads: 2, kvHeads: 2, intermediate: 96),
    };

    [TestMethod]
    [DataRow("qwen2 gqa")]
    [DataRow("llama untied")]
    [DataRow("qwen2 head 32")]
    public void LogitsEqualLibtorchsForwardForPrefillsAndSteps(string name)
    {
        RequireKernel();
        var config = Config(name);
        using var scope = torch.NewDisposeScope();
        using var model = NewModel(config, 3);
        using var decoder = new FusedDecoder(model) { Threads = 2, RowsPerGroup = 8 };
        using var cache = new SlotKvCache(config, rows: 5, capacity: 64, ScalarType.Float32, torch.CPU);
        var rnd = new Random(4);
        var prompts = new[] { 1, 9, 23, 2, 40 }.Select(len => Enumerable.Range(0, len).Select(_ => rnd.Next(Vocab)).ToArray()).ToArray();

        var prefill = decoder.Run(prompts.Select((p, r) => new DecodeRun(p, 0, p.Length, 0, r, r, 0)).ToList(), cache);
        for (int r = 0; r < prompts.Length; r++) AssertClose(Plain(model, prompts[r]), prefill[r], $"{name}: prefill of row {r}");

        // Three decoding steps of one token per row, each row over its own slots.
        var sequences = prompts.Select(p => p.ToList()).ToArray();
        for (int step = 0; step < 3; step++)
        {
            foreach (var s in sequences) s.Add(rnd.Next(Vocab));
            var logits = decoder.Run(sequences.Select((s, r) => new DecodeRun(new[] { s[^1] }, 0, 1, s.Count - 1, r, r, 0)).ToList(), cache);
            for (int r = 0; r < sequences.Length; r++) AssertClose(Plain(model, sequences[r].ToArray()), logits[r], $"{name}: step {step} of row {r}");
        }
    }

    private static Tensor Plain(Qwen2ForCausalLM model, int[] ids)
    {
        using var noGrad = torch.no_grad();
        var logits = model.Forward(torch.tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0));
        return logits[0, ids.Length - 1];
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        double scale = expected.abs().max().item<float>();
        double diff = MaxAbsDiff(expected, actual);
        Assert.IsLessThan(2e-5 * Math.Max(1, scale), diff, $"{what}: max |fused - libtorch| = {diff} (logits up to {scale})");
        Assert.IsGreaterThan(0.5, scale, $"{what}: logits this small would prove little");
    }

    [TestMethod]
    public void ASequencesLogitsAreTheSameBitsInAnyBatchOnAnyThreadsAndInAnySplit()
    {
        RequireKernel();
        using var scope = torch.NewDisposeScope();
        var config = Gqa();
        using var model = NewModel(config, 5);
        var rnd = new Random(6);
        var prompts = Enumerable.Range(0, 12).Select(i => Enumerable.Range(0, 3 + i * 5 % 23).Select(_ => rnd.Next(Vocab)).ToArray()).ToArray();

        // Reference: every prompt alone, in one pass, on one thread.
        float[] Alone(int[] prompt, int threads, int rowsPerGroup)
        {
            using var decoder = new FusedDecoder(model) { Threads = threads, RowsPerGroup = rowsPerGroup };
            using var cache = new SlotKvCache(config, 1, 64, ScalarType.Float32, torch.CPU);
            return decoder.Run(new[] { new DecodeRun(prompt, 0, prompt.Length, 0, 0, 0, 0) }, cache)[0].data<float>().ToArray();
        }
        var alone = prompts.Select(p => Alone(p, 1, 64)).ToArray();

        // All twelve together, in another order, on two threads with small groups.
        using (var decoder = new FusedDecoder(model) { Threads = 2, RowsPerGroup = 5 })
        using (var cache = new SlotKvCache(config, 12, 64, ScalarType.Float32, torch.CPU))
        {
            var order = Enumerable.Range(0, 12).Reverse().ToArray();
            var together = decoder.Run(order.Select((p, r) => new DecodeRun(prompts[p], 0, prompts[p].Length, 0, r, r, 0)).ToList(), cache);
            for (int r = 0; r < 12; r++) CollectionAssert.AreEqual(alone[order[r]], together[r].data<float>().ToArray(), $"prompt {order[r]} in a batch");
        }

        // One prompt in two parts (the second reading the first's cached keys), and one token at a time.
        var prompt = prompts[11];
        using (var decoder = new FusedDecoder(model) { Threads = 2 })
        using (var cache = new SlotKvCache(config, 2, 64, ScalarType.Float32, torch.CPU))
        {
            int cut = prompt.Length / 2;
            decoder.Run(new[] { new DecodeRun(prompt, 0, cut, 0, 0, 0, 0) }, cache);
            var parts = decoder.Run(new[] { new DecodeRun(prompt, cut, prompt.Length - cut, cut, 0, 0, 0) }, cache);
            CollectionAssert.AreEqual(alone[11], parts[0].data<float>().ToArray(), "prefill in two parts");
            Tensor? last = null;
            for (int t = 0; t < prompt.Length; t++) last = decoder.Run(new[] { new DecodeRun(prompt, t, 1, t, 1, 1, 0) }, cache);
            CollectionAssert.AreEqual(alone[11], last![0].data<float>().ToArray(), "one token at a time");
        }
    }

    [TestMethod]
    public void ARowReadsASharedPromptFromTheRowThatHoldsIt()
    {
        RequireKernel();
        using var scope = torch.NewDisposeScope();
        var config = Gqa();
        using var model = NewModel(config, 7);
        using var decoder = new FusedDecoder(model);
        using var cache = new SlotKvCache(config, 3, 64, ScalarType.Float32, torch.CPU);
        var prompt = new[] { 3, 1, 4, 1, 5, 9, 2, 6 };
        decoder.Run(new[] { new DecodeRun(prompt, 0, prompt.Length, 0, 0, 0, 0) }, cache);
        // Row 2 holds nothing below the prompt's length: it reads the prompt from row 0, its own token from itself.
        var own = decoder.Run(new[] { new DecodeRun(new[] { 7 }, 0, 1, prompt.Length, 0, 0, prompt.Length) }, cache)[0].data<float>().ToArray();
        var reader = decoder.Run(new[] { new DecodeRun(new[] { 7 }, 0, 1, prompt.Length, 2, 0, prompt.Length) }, cache)[0].data<float>().ToArray();
        CollectionAssert.AreEqual(own, reader);
        AssertClose(Plain(model, prompt.Append(7).ToArray()), torch.tensor(reader), "the reader's logits");
    }

    [TestMethod]
    public void ContinuousBatchingThroughTheDecoderGeneratesWhatLibtorchsOpsGenerate()
    {
        RequireKernel();
        var config = Qwen2Config.Tiny(vocab: 26, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48);
        using var model = NewModel(config, 8);
        var rnd = new Random(9);
        var rows = Enumerable.Range(0, 40).Select(i =>
        {
            var prompt = Enumerable.Range(0, rnd.Next(1, 20)).Select(_ => rnd.Next(26)).ToArray();
            return new GenerationRow(prompt, i % 2 == 0 ? 0 : 1.0, i % 2 == 0 ? 1 : 0.9, rnd.Next(1, 16), Array.Empty<string>(), Seed: 50 + i / 3, Row: i % 3, Tag: i);
        }).ToList();
        rows[5] = rows[5] with { Prompt = rows[4].Prompt };   // a shared prompt

        Dictionary<int, int[]> Generate(bool fused)
        {
            FusedDecoder.Enabled = fused;
            try
            {
                using var generator = new ContinuousBatchGenerator(model, ids => new string(ids.Select(i => (char)('a' + i)).ToArray()), new[] { 4 }, 16);
                var results = new Dictionary<int, int[]>();
                int next = 0;
                while (next < rows.Count || generator.Live > 0)
                {
                    int joining = Math.Min(Math.Min(generator.FreeRows, 6), rows.Count - next);
                    if (joining > 0)
                    {
                        foreach (var (row, result) in generator.Admit(rows.GetRange(next, joining))) results.Add((int)row.Tag!, result.Tokens);
                        next += joining;
                    }
                    Assert.AreEqual(fused, generator.UsesFusedDecoder);
                    foreach (var (row, result) in generator.Step()) results.Add((int)row.Tag!, result.Tokens);
                }
                return results;
            }
            finally { FusedDecoder.Enabled = true; }
        }

        var plain = Generate(fused: false);
        var fast = Generate(fused: true);
        Assert.IsTrue(plain.Values.Sum(t => t.Length) > 200, "enough tokens to compare");
        for (int i = 0; i < rows.Count; i++) CollectionAssert.AreEqual(plain[i], fast[i], $"row {i} (temperature {rows[i].Temperature})");

        // Greedy rows also equal the plain generator one prompt at a time.
        var alone = new TextGenerator(model, null);
        for (int i = 0; i < rows.Count; i += 2)
            CollectionAssert.AreEqual(alone.Generate(rows[i].Prompt, new GenerationOptions { MaxNewTokens = rows[i].MaxNewTokens, EosIds = new[] { 4 } }).Tokens, fast[i], $"row {i} alone");
    }

    [TestMethod]
    public void ServesOnlyFloat32CpuModelsWithoutActiveAdapters()
    {
        RequireKernel();
        var config = Gqa(layers: 1);
        using (var fp32 = NewModel(config, 1)) Assert.IsTrue(FusedDecoder.AppliesTo(fp32));
        using (var fp64 = Qwen2ForCausalLM.CreateRandom(config, ScalarType.Float64, seed: 1)) Assert.IsFalse(FusedDecoder.AppliesTo(fp64));
        using (var bf16 = Qwen2ForCausalLM.CreateRandom(config, ScalarType.BFloat16, seed: 1)) Assert.IsFalse(FusedDecoder.AppliesTo(bf16));
        using (var lora = NewModel(config, 1))
        {
            var (_, q) = lora.Projections().First();
            q.AddAdapter(4, 8, 0);
            Assert.IsFalse(FusedDecoder.AppliesTo(lora), "an active adapter changes the projection");
            q.AdapterEnabled = false;
            Assert.IsTrue(FusedDecoder.AppliesTo(lora), "a disabled adapter does not");
        }
        using (var odd = NewModel(Qwen2Config.Tiny(vocab: Vocab, hidden: 24, layers: 1, heads: 2, kvHeads: 1, intermediate: 48), 1))
            Assert.IsFalse(FusedDecoder.AppliesTo(odd), "head size 12 is not a multiple of 8");
        using var plain = NewModel(config, 1);
        FusedDecoder.Enabled = false;
        try { Assert.IsFalse(FusedDecoder.AppliesTo(plain)); }
        finally { FusedDecoder.Enabled = true; }
    }

    [TestMethod]
    public void RefusesRunsOutsideTheCacheOrTheVocabulary()
    {
        RequireKernel();
        var config = Gqa(layers: 1);
        using var model = NewModel(config, 1);
        using var decoder = new FusedDecoder(model);
        using var cache = new SlotKvCache(config, 2, 16, ScalarType.Float32, torch.CPU);
        var ids = new[] { 1, 2, 3 };
        Assert.ThrowsExactly<ArgumentException>(() => decoder.Run(new[] { new DecodeRun(ids, 0, 3, 14, 0, 0, 0) }, cache), "past the capacity");
        Assert.ThrowsExactly<ArgumentException>(() => decoder.Run(new[] { new DecodeRun(ids, 0, 3, 0, 2, 2, 0) }, cache), "no such row");
        Assert.ThrowsExactly<ArgumentException>(() => decoder.Run(new[] { new DecodeRun(ids, 0, 3, 2, 0, 1, 3) }, cache), "a shared prompt longer than the run's start");
        Assert.ThrowsExactly<ArgumentException>(() => decoder.Run(new[] { new DecodeRun(new[] { Vocab }, 0, 1, 0, 0, 0, 0) }, cache), "a token outside the vocabulary");
        Assert.ThrowsExactly<ArgumentException>(() => decoder.Run(new[] { new DecodeRun(ids, 2, 2, 0, 0, 0, 0) }, cache), "tokens outside the array");
    }
}
