using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Tests.Modeling.ModelTestUtil;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

/// <summary>
/// Continuous batching against the plain path: every sequence, whatever joins or leaves the batch around it, gets
/// what <see cref="TextGenerator"/> gives its prompt alone.
/// </summary>
[TestClass]
public sealed class ContinuousBatchGeneratorTests
{
    [ClassInitialize]
    public static void ClassInit(TestContext _) => SingleThread.Enter();

    [ClassCleanup]
    public static void ClassDone() => SingleThread.Exit();

    private const int Vocab = 26;

    // fp64 so that argmax near-ties cannot make batched and alone runs differ by rounding; grouped-query attention (4 heads, 2 kv).
    private static Qwen2ForCausalLM NewModel(long seed)
    {
        var m = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: Vocab, hidden: 16, layers: 2, heads: 4, kvHeads: 2), ScalarType.Float64, seed: seed);
        Scramble(m, seed, std: 0.5);
        return m;
    }

    private static string Letters(int[] ids) => new(ids.Select(i => (char)('a' + i)).ToArray());

    /// <summary>Rows of mixed prompt lengths (1–24), token budgets (1–14) and stop strings, one of them twice (a shared prefill).</summary>
    private static List<GenerationRow> Rows(int count, int seed, double temperature = 0)
    {
        var rnd = new Random(seed);
        var rows = new List<GenerationRow>();
        for (int i = 0; i < count; i++)
        {
            var prompt = Enumerable.Range(0, rnd.Next(1, 25)).Select(_ => rnd.Next(Vocab)).ToArray();
            if (i % 7 == 3) prompt = rows[i - 1].Prompt;   // the same prompt as the row before (prefilled once when they join together)
            var stops = i % 3 == 0 ? new[] { Letters(new[] { rnd.Next(Vocab) }), Letters(new[] { rnd.Next(Vocab), rnd.Next(Vocab) }) } : Array.Empty<string>();
            rows.Add(new GenerationRow(prompt, temperature, temperature == 0 ? 1 : 0.9, rnd.Next(1, 15), stops, Seed: 100 + i / 4, Row: i % 4, Tag: i));
        }
        return rows;
    }

    /// <summary>Runs rows through the generator, admitting them in the given order whenever rows are free.</summary>
    private static Dictionary<int, GenerationResult> RunContinuous(Qwen2ForCausalLM model, IReadOnlyList<GenerationRow> rows, int maxRows, int[] eos)
    {
        using var generator = new ContinuousBatchGenerator(model, Letters, eos, maxRows);
        var results = new Dictionary<int, GenerationResult>();
        void Take(IEnumerable<(GenerationRow Row, GenerationResult Result)> done)
        {
            foreach (var (row, result) in done) results.Add((int)row.Tag!, result);
        }
        int next = 0;
        while (next < rows.Count || generator.Live > 0)
        {
            // Join in small groups, so that sequences join a batch already running.
            int joining = Math.Min(Math.Min(generator.FreeRows, 5), rows.Count - next);
            if (joining > 0)
            {
                Take(generator.Admit(rows.Skip(next).Take(joining).ToList()));
                next += joining;
            }
            Take(generator.Step());
        }
        return results;
    }

    [TestMethod]
    [DataRow(true, DisplayName = "SlotAttention, prompts stored once")]
    [DataRow(false, DisplayName = "SDPA, a copy of the prompt per row")]
    public void GreedyOf256MixedRowsEqualsOneByOne(bool kernel)
    {
        SlotAttention.Enabled = kernel;
        try { GreedyOf256MixedRows(); }
        finally { SlotAttention.Enabled = true; }
    }

    private static void GreedyOf256MixedRows()
    {
        using var model = NewModel(11);
        var plain = new TextGenerator(model, Letters);
        var rows = Rows(256, seed: 1);
        int[] eos = { 4 };
        var alone = rows.Select(r => plain.Generate(r.Prompt, new GenerationOptions { MaxNewTokens = r.MaxNewTokens, StopStrings = r.StopStrings, EosIds = eos })).ToList();
        Assert.IsTrue(alone.Any(r => r.Reason == StopReason.EndOfSequence) && alone.Any(r => r.Reason == StopReason.StopString) && alone.Any(r => r.Reason == StopReason.MaxTokens),
            "the rows stop for every reason");

        // All 256 in one batch, and a batch of 24 rows that sequences keep joining and leaving.
        foreach (int maxRows in new[] { 256, 24 })
        {
            var batched = RunContinuous(model, rows, maxRows, eos);
            for (int i = 0; i < rows.Count; i++)
            {
                CollectionAssert.AreEqual(alone[i].Tokens, batched[i].Tokens, $"row {i}, {maxRows} rows");
                Assert.AreEqual(alone[i].Text, batched[i].Text, $"row {i}");
                Assert.AreEqual(alone[i].Reason, batched[i].Reason, $"row {i}");
                Assert.AreEqual(alone[i].StopString, batched[i].StopString, $"row {i}");
            }
        }
    }

    [TestMethod]
    public void ASampledRowDependsOnItsSeedAndIndexOnly()
    {
        using var model = NewModel(12);
        var rows = Rows(60, seed: 2, temperature: 1.0);
        var together = RunContinuous(model, rows, 64, Array.Empty<int>());
        // Other neighbours, another order, another batch size.
        var shuffled = rows.OrderBy(r => StableOrder((int)r.Tag!)).ToList();
        var reordered = RunContinuous(model, shuffled, 7, Array.Empty<int>());
        for (int i = 0; i < rows.Count; i++)
            CollectionAssert.AreEqual(together[i].Tokens, reordered[i].Tokens, $"row {i}");
        var alone = RunContinuous(model, new[] { rows[9] }, 1, Array.Empty<int>());
        CollectionAssert.AreEqual(together[9].Tokens, alone[9].Tokens);

        // Sampling does sample: another seed or another row index gives other text somewhere.
        var reseeded = RunContinuous(model, rows.Select(r => r with { Seed = r.Seed + 1000 }).ToList(), 64, Array.Empty<int>());
        Assert.IsTrue(Enumerable.Range(0, rows.Count).Count(i => !together[i].Tokens.SequenceEqual(reseeded[i].Tokens)) > rows.Count / 2);
        Assert.IsFalse(together[0].Tokens.SequenceEqual(RunContinuous(model, new[] { rows[0] with { Row = 1 } }, 1, Array.Empty<int>())[0].Tokens)
                       && together[1].Tokens.SequenceEqual(RunContinuous(model, new[] { rows[1] with { Row = 2 } }, 1, Array.Empty<int>())[1].Tokens));
    }

    private static int StableOrder(int i) => (i * 37 + 11) % 101;

    [TestMethod]
    public void ASharedPromptOutlivesTheRowThatHeldIt()
    {
        using var model = NewModel(14);
        var plain = new TextGenerator(model, Letters);
        var prompt = new[] { 3, 1, 4, 1, 5, 9, 2, 6 };
        // Joined together: the first row holds the prompt and stops first; the others read it on, while rows
        // before them in the batch leave too (so they move).
        var rows = new List<GenerationRow>
        {
            new(new[] { 7, 7 }, 0, 1, 2, Array.Empty<string>(), 0, 0, Tag: 0),
            new(prompt, 0, 1, 1, Array.Empty<string>(), 0, 0, Tag: 1),
            new(prompt, 0, 1, 9, Array.Empty<string>(), 0, 1, Tag: 2),
            new(new[] { 2 }, 0, 1, 4, Array.Empty<string>(), 0, 0, Tag: 3),
            new(prompt, 0, 1, 5, Array.Empty<string>(), 0, 2, Tag: 4),
            new(prompt, 0, 1, 12, Array.Empty<string>(), 0, 3, Tag: 5),
        };
        using var generator = new ContinuousBatchGenerator(model, Letters, Array.Empty<int>(), 8);
        var results = new Dictionary<int, GenerationResult>();
        foreach (var (r, g) in generator.Admit(rows)) results[(int)r.Tag!] = g;
        while (generator.Live > 0)
            foreach (var (r, g) in generator.Step()) results[(int)r.Tag!] = g;
        foreach (var r in rows)
            CollectionAssert.AreEqual(plain.Generate(r.Prompt, new GenerationOptions { MaxNewTokens = r.MaxNewTokens }).Tokens, results[(int)r.Tag!].Tokens, $"row {r.Tag}");
    }

    [TestMethod]
    [DataRow(true, DisplayName = "SlotAttention")]
    [DataRow(false, DisplayName = "SDPA")]
    public void PromptsThatBeginWithEarlierPromptsRunOnlyTheirRest(bool kernel)
    {
        SlotAttention.Enabled = kernel;
        try
        {
            using var model = NewModel(15);
            var plain = new TextGenerator(model, Letters);
            var rnd = new Random(9);
            var bases = Enumerable.Range(0, 6).Select(_ => Enumerable.Range(0, rnd.Next(20, 31)).Select(_ => rnd.Next(Vocab)).ToArray()).ToList();
            int tag = 0;
            GenerationRow Row(int[] prompt, int maxNew = 6) => new(prompt, 0, 1, maxNew, Array.Empty<string>(), 0, 0, Tag: tag++);
            // A long row keeps the batch busy, so the pool is not cleared between the two admissions.
            var first = new List<GenerationRow> { Row(bases[0], 40) };
            first.AddRange(bases.Skip(1).Select(b => Row(b, 3)));
            var second = new List<GenerationRow>
            {
                Row(bases[1].Concat(new[] { 5 }).ToArray()),                      // one more token
                Row(bases[2].Concat(new[] { 1, 2, 3, 4, 5, 6, 7, 8 }).ToArray()), // eight more
                Row(bases[3].Concat(new[] { 9, 9 }).ToArray()),
                Row(bases[3].Concat(new[] { 9, 8 }).ToArray()),                   // two that share the pooled prefix and one more token
                Row(bases[4].Take(18).ToArray()),                                 // a prefix of a pooled prompt
                Row(bases[5]),                                                    // a pooled prompt again: its last token runs
                Row(bases[5].Take(PromptPrefixPool.MinShared).ToArray()),         // too short to look up
                Row(Enumerable.Range(0, 25).Select(_ => rnd.Next(Vocab)).ToArray()),
            };
            using var generator = new ContinuousBatchGenerator(model, Letters, Array.Empty<int>(), 32);
            var results = new Dictionary<int, GenerationResult>();
            void Take(IEnumerable<(GenerationRow Row, GenerationResult Result)> done) { foreach (var (r, g) in done) results[(int)r.Tag!] = g; }
            Take(generator.Admit(first));
            for (int i = 0; i < 4; i++) Take(generator.Step());
            Assert.AreEqual(0, generator.ReusedTokens);
            Take(generator.Admit(second));
            Assert.IsGreaterThan(0L, generator.ReusedTokens, "the second admission reused pooled prefixes");
            while (generator.Live > 0) Take(generator.Step());
            foreach (var r in first.Concat(second))
                CollectionAssert.AreEqual(plain.Generate(r.Prompt, new GenerationOptions { MaxNewTokens = r.MaxNewTokens }).Tokens, results[(int)r.Tag!].Tokens, $"row {r.Tag}");
        }
        finally
        {
            SlotAttention.Enabled = true;
        }
    }

    [TestMethod]
    public void RowsThatNeedMoreSlotsGrowTheCacheWithoutChangingOthers()
    {
        using var model = NewModel(13);
        var plain = new TextGenerator(model, Letters);
        var shortRow = new GenerationRow(new[] { 1, 2 }, 0, 1, 3, Array.Empty<string>(), 0, 0, Tag: 0);
        var longRow = new GenerationRow(Enumerable.Range(0, 150).Select(i => i % Vocab).ToArray(), 0, 1, 40, Array.Empty<string>(), 0, 0, Tag: 1);
        using var generator = new ContinuousBatchGenerator(model, Letters, Array.Empty<int>(), 4);
        var results = new Dictionary<int, GenerationResult>();
        foreach (var (r, g) in generator.Admit(new[] { shortRow })) results[(int)r.Tag!] = g;
        foreach (var (r, g) in generator.Step()) results[(int)r.Tag!] = g;
        foreach (var (r, g) in generator.Admit(new[] { longRow })) results[(int)r.Tag!] = g;   // needs a larger cache while the first row runs
        while (generator.Live > 0)
            foreach (var (r, g) in generator.Step()) results[(int)r.Tag!] = g;
        CollectionAssert.AreEqual(plain.Generate(shortRow.Prompt, new GenerationOptions { MaxNewTokens = 3 }).Tokens, results[0].Tokens);
        CollectionAssert.AreEqual(plain.Generate(longRow.Prompt, new GenerationOptions { MaxNewTokens = 40 }).Tokens, results[1].Tokens);
    }
}
