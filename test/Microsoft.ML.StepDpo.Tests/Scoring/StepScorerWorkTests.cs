using System.Text;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Tests.Tokenization;
using Microsoft.ML.StepDpo.Text;
using TorchSharp;

namespace Microsoft.ML.StepDpo.Tests.Scoring;

/// <summary>
/// The step scorer's work is linear in the row and bounded by the model's context, and its rewards are those of the
/// plain computation (every step's context and context + step tokenized whole, as in PromptResponseSeam).
/// </summary>
[TestClass]
public sealed class StepScorerWorkTests
{
    private static readonly PromptTemplate Template = new("task", "Q: {instruction}\nA:", " ");

    private static StepScorer Scorer(ByteLevelBpeTokenizer tok, int context, PromptTemplate? template = null)
    {
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 32)
            with { MaxPositionEmbeddings = context };
        return new StepScorer(Qwen2ForCausalLM.CreateRandom(config, seed: 3), Qwen2ForCausalLM.CreateRandom(config, seed: 4), tok,
            template ?? Template, beta: 0.5, threshold: 0);
    }

    /// <summary>The computation before the scorer was made linear: whole prefixes, one joint sequence for the row.</summary>
    private static List<(int[] Ids, int Start, int End)> PlainSpans(StepScorer scorer, string prompt, string solution)
    {
        var parts = scorer.Split(prompt, solution);
        var result = new List<(int[], int, int)>();
        if (parts.Count == 0) return result;
        var full = scorer.Tokenizer.Encode(parts[^1].Context + parts[^1].Step);
        foreach (var (context, step, _) in parts)
        {
            var (p, r) = scorer.Tokenizer.TokenizeSeam(context, step);
            var joint = p.Concat(r).ToArray();
            bool isPrefix = joint.Length <= full.Length && joint.AsSpan().SequenceEqual(full.AsSpan(0, joint.Length));
            result.Add((isPrefix ? full : joint, p.Length, joint.Length));
        }
        return result;
    }

    private static float[] PlainRewards(StepScorer scorer, string prompt, string solution)
    {
        var rewards = new List<float>();
        using var noGrad = torch.no_grad();
        foreach (var (ids, s, e) in PlainSpans(scorer, prompt, solution))
        {
            double[] Lp(Qwen2ForCausalLM m)
            {
                using var scope = torch.NewDisposeScope();
                var input = torch.tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0);
                var logp = Qwen2ForCausalLM.GatherLogProbs(m.Logits(m.Hidden(input[.., ..^1], null, null)), input[.., 1..]);
                return new double[] { 0 }.Concat(logp.to(torch.ScalarType.Float64).data<double>().ToArray()).ToArray();
            }
            var (policy, reference) = (Lp(scorer.Policy), Lp(scorer.Reference!));
            double sum = 0;
            for (int j = Math.Max(1, s); j < e; j++) sum += policy[j] - reference[j];
            rewards.Add((float)(scorer.Beta * sum));
        }
        return rewards.ToArray();
    }

    private static void AssertSameSpans(StepScorer scorer, string prompt, string solution)
    {
        var expected = PlainSpans(scorer, prompt, solution);
        var actual = scorer.StepSpans(prompt, solution, StepScorer.Cuts(solution), scorer.ContextLength);
        Assert.HasCount(expected.Count, actual);
        for (int k = 0; k < expected.Count; k++)
        {
            Assert.IsNotNull(actual[k], $"step {k + 1} of {solution}");
            var (ids, s, e) = actual[k]!.Value;
            Assert.AreEqual(expected[k].Start, s, $"step {k + 1} start: {solution}");
            Assert.AreEqual(expected[k].End, e, $"step {k + 1} end: {solution}");
            CollectionAssert.AreEqual(expected[k].Ids[..e], ids[..e], $"step {k + 1} tokens: {solution}");
        }
    }

    private static readonly string[] Solutions =
    {
        "Let's think step by step.\nStep 1: 3+4=7.\nStep 2: 7*2=14.\nThe answer is 14.",
        "Step 1:3 apples  \n\nStep 2:   then   some spaces\t\nStep 3: café naïve 𝑥 = 2\n#### 2",
        "Let's think step by step.\nStep 1: Compute 12 × 3 = 36\n   continued on an indented line\nStep 2: 36 − 1 = 35.\n\n\nThe answer is $\\boxed{35}$.",
        "First we add.\nThen we multiply:\n(2+3)*4 = 20\nSo the answer is 20.",
        "Step 1: 你好，世界。\nStep 2: x² + y² = z²\nStep 3: <|im_end|> is text here\nThe answer is 1.",
        "One single line without any step markers at all, 1+1=2.",
        "Step 1: a\r\nStep 2: b\r\nStep 3: c",
    };

    [TestMethod]
    public void SpansEqualThePlainComputationOnNormalRows()
    {
        using var scorer = Scorer(TokenizerFixtures.Qwen, 4096);
        foreach (var solution in Solutions.Concat(TokenizerFixtures.Corpus.Take(200)))
            AssertSameSpans(scorer, "Mia has 3 pens.\nShe gets 4 more.", solution);
        using var noSeparator = Scorer(TokenizerFixtures.Qwen, 4096, new PromptTemplate("tight", "Q: {instruction}\n", ""));
        foreach (var solution in Solutions)
            AssertSameSpans(noSeparator, "Ava has 2 boxes.", solution);
    }

    [TestMethod]
    public void RewardsEqualThePlainComputation()
    {
        using var scorer = Scorer(TokenizerFixtures.Qwen, 4096);
        foreach (var solution in Solutions)
        {
            var scores = scorer.Score("Ben has 5 cards.", solution);
            AssertClose(PlainRewards(scorer, "Ben has 5 cards.", solution), scores.Rewards, solution);
            Assert.AreEqual(0, scores.UnscoredSteps);
        }
        using var chars = Scorer(CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet), 4096);
        string arithmetic = "Let's think step by step.\nStep 1: 3+4=7.\nStep 2: 7*2=14.\nThe answer is 14.";
        AssertClose(PlainRewards(chars, "3+4 then *2", arithmetic), chars.Score("3+4 then *2", arithmetic).Rewards, arithmetic);
        string many = ManySteps(12);
        AssertClose(PlainRewards(scorer, "Count up.", many), scorer.Score("Count up.", many).Rewards, many);
    }

    // A step's own tail runs on the key/value cache of the row rather than as a sequence of its own: equal up to float rounding.
    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.HasCount(expected.Length, actual, what);
        for (int k = 0; k < expected.Length; k++)
            Assert.AreEqual(expected[k], actual[k], 1e-4f * Math.Max(1f, Math.Abs(expected[k])), $"step {k + 1}: {what}");
    }

    private static string ManySteps(int steps)
    {
        var b = new StringBuilder("Let's think step by step.\n");
        for (int k = 1; k <= steps; k++) b.Append("Step ").Append(k).Append(": ").Append(k).Append("+1=").Append(k + 1).Append(".\n");
        return b.Append("The answer is ").Append(steps + 1).Append('.').ToString();
    }

    [TestMethod]
    public void TokenizingAStepCostsItsOwnLineNotItsPrefix()
    {
        using var scorer = Scorer(TokenizerFixtures.Qwen, 1 << 20);
        string prompt = "Count up.";
        string small = ManySteps(150);
        AssertSameSpans(scorer, prompt, small);

        string solution = ManySteps(2000); // ~35 KB: the whole-prefix computation tokenized ~70 MB of text
        long before = scorer.Work.EncodedChars;
        var spans = scorer.StepSpans(prompt, solution, StepScorer.Cuts(solution), scorer.ContextLength);
        long chars = scorer.Work.EncodedChars - before;
        Assert.HasCount(2000, spans);
        Assert.IsTrue(spans.All(s => s is not null));
        Assert.IsLessThanOrEqualTo(6L * solution.Length, chars, $"{chars} characters tokenized for a row of {solution.Length}");
    }

    [TestMethod]
    public void TheForwardPassOfARowRunsItsTokensOnceAndEachStepsOwnTail()
    {
        using var scorer = Scorer(TokenizerFixtures.Qwen, 1 << 20);
        string solution = ManySteps(150);
        int tokens = scorer.Tokenizer.Encode(Template.Build("Count up.", solution)).Length;
        var scores = scorer.Score("Count up.", solution);
        Assert.HasCount(150, scores.Rewards);
        Assert.IsTrue(scores.Rewards.All(float.IsFinite));
        // Before, each step whose tokens differ from the row's at its end (".\n" is one token) ran its whole prefix again.
        Assert.IsLessThanOrEqualTo(2L * (tokens + 8 * 150), scorer.Work.ForwardPositions, $"{scorer.Work.ForwardPositions} positions for {tokens} tokens");
    }

    [TestMethod]
    public void ARowFarBeyondTheContextIsReadOnlyAsFarAsTheContext()
    {
        using var scorer = Scorer(TokenizerFixtures.Qwen, 64);
        string prompt = "Count up.";
        foreach (string solution in new[] { ManySteps(40_000), "Step 1: " + new string('7', 1_000_000) + ".\nStep 2: done.", string.Concat(Enumerable.Repeat("Then add one. ", 60_000)) })
        {
            var before = scorer.Work;
            var scores = scorer.Score(prompt, solution);
            var after = scorer.Work;
            Assert.IsLessThanOrEqualTo(64L, after.LongestForward, "the forward pass is capped at the context");
            Assert.IsLessThanOrEqualTo(2L * 64 * 4, after.ForwardPositions - before.ForwardPositions, "the forward passes cover the context only");
            Assert.IsLessThanOrEqualTo(64L * StepScorer.CharsPerContextToken * 8, after.EncodedChars - before.EncodedChars,
                "the tokenizer reads the row only as far as the context");
            Assert.IsGreaterThan(0, scores.UnscoredSteps);
            Assert.AreEqual(scores.Rewards.Count(float.IsNaN), scores.UnscoredSteps);
            int firstUnscored = Array.FindIndex(scores.Rewards, float.IsNaN);
            Assert.IsTrue(scores.Rewards.Skip(firstUnscored).All(float.IsNaN), "every step after the first beyond the context is unscored");
            Assert.IsFalse(float.IsNaN(scores.Total));
        }
        string many = ManySteps(40_000);
        Assert.IsGreaterThan(0, scorer.Score(prompt, many).Rewards.Count(float.IsFinite), "the steps that fit are scored");

        scorer.FailBeyondContext = true;
        var e = Assert.Throws<InvalidOperationException>(() => scorer.Score(prompt, many));
        StringAssert.Contains(e.Message, "context of 64 tokens");
        Assert.AreEqual(2, scorer.Score(prompt, "Step 1: 1+1=2.\nStep 2: 2+1=3.").Rewards.Length, "a short row still scores");
    }
}
