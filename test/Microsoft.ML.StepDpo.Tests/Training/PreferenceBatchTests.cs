using Microsoft.ML.StepDpo.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Training;

[TestClass]
public sealed class PreferenceBatchTests
{
    /// <summary>A one-layer attention LM: token + learned position embedding, one SDPA head block, vocab head.
    /// Enough to make every logit depend on which tokens and positions a query can see.</summary>
    private sealed class ToyLm : nn.Module<Tensor, Tensor, Tensor?, Tensor>
    {
        private readonly Embedding tok, pos;
        private readonly Linear qkv, head;
        public ToyLm(int vocab, int dim) : base("toy")
        {
            tok = nn.Embedding(vocab, dim); pos = nn.Embedding(64, dim);
            qkv = nn.Linear(dim, 3 * dim); head = nn.Linear(dim, vocab);
            RegisterComponents();
        }
        public override Tensor forward(Tensor ids, Tensor positions, Tensor? mask)
        {
            var x = tok.forward(ids) + pos.forward(positions);
            var parts = qkv.forward(x).unsqueeze(1).chunk(3, -1);
            var att = mask is null
                ? nn.functional.scaled_dot_product_attention(parts[0], parts[1], parts[2], is_casual: true)
                : nn.functional.scaled_dot_product_attention(parts[0], parts[1], parts[2], mask);
            return head.forward(x + att.squeeze(1));
        }
    }

    private static ToyLm NewToy()
    {
        // Built directly in float64 so the equality checks can be tight.
        var saved = torch.get_default_dtype();
        torch.set_default_dtype(ScalarType.Float64);
        try { return new ToyLm(48, 16); }
        finally { torch.set_default_dtype(saved); }
    }

    private static TokenizedPair Pair(int[] context, int[] chosen, int[] rejected) =>
        new(context.Concat(chosen).ToArray(), context.Length, context.Concat(rejected).ToArray(), context.Length);

    private static List<TokenizedPair> Pairs()
    {
        var rng = new Random(7);
        int[] R(int n) => Enumerable.Range(0, n).Select(_ => rng.Next(1, 30)).ToArray();
        var pairs = new List<TokenizedPair>
        {
            Pair(R(9), R(4), R(6)),
            Pair(R(3), R(7), R(2)),
            Pair(R(12), R(1), R(1)),
        };
        // A seam where the two sides tokenized the end of the context differently (BPE merge across it):
        // they share 5 tokens, then the chosen side has a context token 40 and the rejected side 41.
        var shared = R(5);
        pairs.Add(new TokenizedPair(shared.Append(40).Concat(R(3)).ToArray(), 6, shared.Append(41).Concat(R(4)).ToArray(), 6));
        return pairs;
    }

    [TestMethod]
    public void PrefixSharedLayoutHasRestartedPositionsAndBlindRejectedRows()
    {
        var p = Pair(new[] { 1, 2, 3 }, new[] { 4, 5 }, new[] { 6, 7, 8 });
        var b = PreferenceBatch.BuildPrefixShared(new[] { p });
        CollectionAssert.AreEqual(new long[] { 1, 2, 3, 4, 5, 6, 7, 8 }, Row(b.InputIds, 0));
        CollectionAssert.AreEqual(new long[] { 0, 1, 2, 3, 4, 3, 4, 5 }, Row(b.PositionIds, 0));
        var m = b.AttentionMask!;
        Assert.IsTrue(m[0, 4, 3] && m[0, 4, 0]);     // chosen sees prefix and earlier chosen
        Assert.IsFalse(m[0, 5, 3] || m[0, 5, 4]);    // rejected cannot see chosen
        Assert.IsTrue(m[0, 5, 2] && m[0, 7, 6] && m[0, 7, 0]);
        Assert.IsFalse(m[0, 2, 3]);                  // causal
        // Labels: chosen 4 predicted at index 2, 5 at 3; rejected 6 at index 2 (the prefix end), 7 at 5, 8 at 6.
        var labels = b.Labels.Select(l => (l.Position, l.Target, l.Side)).ToArray();
        CollectionAssert.AreEqual(new[] { (2, 4, 0), (3, 5, 0), (2, 6, 1), (5, 7, 1), (6, 8, 1) }, labels);
        Assert.AreEqual(8, b.InputTokens);
    }

    private static long[] Row(long[,] a, int r) => Enumerable.Range(0, a.GetLength(1)).Select(j => a[r, j]).ToArray();

    [TestMethod]
    public void PrefixSharingGivesTheSameLossAndGradientsAsTheConcatenatedPath()
    {
        torch.manual_seed(3);
        var model = NewToy();
        var pairs = Pairs();

        (double loss, Dictionary<string, Tensor> grads, PairLogProbs lp) Run(PreferenceBatch batch)
        {
            model.zero_grad();
            var (ids, pos, mask) = batch.ToTensors(torch.CPU);
            var logits = model.forward(ids, pos, mask?.to(torch.CPU));
            var (lp, _, _) = ResponseLogProbs.Compute(logits, batch);
            var reference = new PairLogProbs(lp.Chosen.detach() - 0.3, lp.Rejected.detach() + 0.2, lp.ChosenTokens, lp.RejectedTokens);
            var r = PreferenceLoss.Compute(lp, reference, 0.4);
            r.Loss.backward();
            return (r.Loss.item<double>(), model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad?.clone() ?? throw new InvalidOperationException("no grad: " + p.name)), lp);
        }

        var naive = Run(PreferenceBatch.BuildConcatenated(pairs));
        var shared = Run(PreferenceBatch.BuildPrefixShared(pairs));
        Assert.AreEqual(naive.loss, shared.loss, 1e-10 * Math.Abs(naive.loss));
        Assert.IsTrue(naive.lp.Chosen.allclose(shared.lp.Chosen, rtol: 1e-10, atol: 1e-10));
        Assert.IsTrue(naive.lp.Rejected.allclose(shared.lp.Rejected, rtol: 1e-10, atol: 1e-10));
        CollectionAssert.AreEqual(naive.lp.ChosenTokens.data<double>().ToArray(), shared.lp.ChosenTokens.data<double>().ToArray());
        foreach (var (name, g) in naive.grads)
            Assert.IsTrue(g.allclose(shared.grads[name], rtol: 1e-8, atol: 1e-12), $"gradient of {name} differs");
    }

    [TestMethod]
    public void LogProbsEqualAHandComputedSumOnOneSequence()
    {
        torch.manual_seed(5);
        var model = NewToy();
        var p = Pair(new[] { 3, 9, 4 }, new[] { 7, 7, 2 }, new[] { 5 });
        var batch = PreferenceBatch.BuildConcatenated(new[] { p });
        var (ids, pos, _) = batch.ToTensors(torch.CPU);
        var logits = model.forward(ids, pos, null);
        var (lp, _, _) = ResponseLogProbs.Compute(logits, batch);
        // Hand: Σ_{j ≥ 3} log softmax(logits[0, j-1])[seq[j]]
        var ls = logits[0].log_softmax(-1);
        double expected = ls[2, 7].item<double>() + ls[3, 7].item<double>() + ls[4, 2].item<double>();
        Assert.AreEqual(expected, lp.Chosen[0].item<double>(), 1e-12);
        Assert.AreEqual(3.0, lp.ChosenTokens[0].item<double>());
    }

    [TestMethod]
    public void PairsWithoutResponseTokensAreRejected()
    {
        Assert.ThrowsExactly<ArgumentException>(() => PreferenceBatch.BuildPrefixShared(new[] { new TokenizedPair(new[] { 1, 2 }, 2, new[] { 1, 3 }, 1) }));
        Assert.ThrowsExactly<ArgumentException>(() => PreferenceBatch.BuildConcatenated(Array.Empty<TokenizedPair>()));
    }
}
