using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// Token log-probabilities of one shared sequence and of "branches" that agree with it on their first tokens (a
/// step whose joint tokenization differs from the row's near the step's end), in one pass with a key/value cache:
/// the shared sequence runs once, in blocks, and each branch runs only its own tail from where it leaves the shared
/// sequence. The work is the shared length plus the tails, and the memory is the cache plus one block's logits, so a
/// row of thousands of steps costs about one forward pass instead of one per step.
/// </summary>
internal static class SharedPrefixLogProbs
{
    /// <summary>Positions per forward call: bounds the attention scores and the logits one call materializes.</summary>
    internal static int BlockSize(Qwen2Config config, long length) =>
        (int)Math.Max(16, Math.Min(1024, Math.Min((1L << 24) / (config.NumAttentionHeads * Math.Max(1, length)), (1L << 26) / config.VocabSize)));

    /// <summary>
    /// log p(ids[j] | ids[&lt;j]) for j ≥ 1 (index 0 unused) of the shared sequence and of each branch.
    /// </summary>
    /// <param name="model">The model (in eval mode, under no_grad).</param>
    /// <param name="shared">The shared sequence.</param>
    /// <param name="branches">Sequences and how many of their first tokens equal the shared sequence's (at least 1).</param>
    /// <param name="counted">Told the number of positions of every forward call (a work counter).</param>
    public static (double[] Shared, double[][] Branches) Compute(Qwen2ForCausalLM model, int[] shared, IReadOnlyList<(int[] Ids, int Agree)> branches, Action<int> counted)
    {
        var lpShared = new double[shared.Length];
        var lpBranches = branches.Select(b => new double[b.Ids.Length]).ToArray();
        int capacity = Math.Max(shared.Length, branches.Select(b => b.Ids.Length).DefaultIfEmpty(0).Max());
        if (capacity < 2) return (lpShared, lpBranches);
        int block = BlockSize(model.Config, capacity);
        using var scope = torch.NewDisposeScope();
        using var cache = new KvCache(model.Config, 1, capacity, model.DType, model.Device);
        int pos = 0; // shared tokens [0, pos) are in the cache
        foreach (int i in Enumerable.Range(0, branches.Count).OrderBy(i => branches[i].Agree))
        {
            var (ids, agree) = branches[i];
            if (agree < 1 || agree > Math.Min(ids.Length, shared.Length))
                throw new ArgumentOutOfRangeException(nameof(branches), agree, "A branch must share between 1 token and its length with the shared sequence.");
            // The branch's first own log-prob comes from the hidden state of token agree - 1, so its tail starts there.
            Run(shared, pos, agree - 1, lpShared);
            pos = agree - 1;
            Run(ids, agree - 1, ids.Length - 1, lpBranches[i]);
        }
        Run(shared, pos, shared.Length - 1, lpShared);
        // A branch's first tokens read log-probs the shared sequence had not reached when it ran.
        for (int i = 0; i < branches.Count; i++)
            Array.Copy(lpShared, 1, lpBranches[i], 1, branches[i].Agree - 1);
        return (lpShared, lpBranches);

        // Feeds ids[from..to) at cache slots from..to, writing log p(ids[j+1] | ids[≤j]) to lp[j+1].
        void Run(int[] ids, int from, int to, double[] lp)
        {
            for (int a = from; a < to; a += block)
            {
                int b = Math.Min(a + block, to);
                using var step = torch.NewDisposeScope();
                var input = torch.tensor(ids.AsSpan(a, b - a + 1).ToArray().Select(t => (long)t).ToArray(), device: model.Device).unsqueeze(0);
                var hidden = model.Hidden(input[.., ..^1], null, null, cache, a);
                var logp = Qwen2ForCausalLM.GatherLogProbs(model.Logits(hidden), input[.., 1..]);
                logp.to(ScalarType.Float64).cpu().data<double>().CopyTo(lp, a + 1);
                counted(b - a);
            }
        }
    }
}
