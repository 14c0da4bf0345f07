namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// Cuts supervised sequences into micro-batches of similar length under a token budget, so little of each
/// padded batch is padding (a plain shuffle wastes a third of the compute on padding when lengths vary).
/// </summary>
/// <remarks>
/// The sequences are shuffled with the seed, split into windows of about <c>window</c> batches, sorted by length
/// inside each window and cut greedily: a batch grows while (rows × longest row) stays within the budget.
/// Every sequence lands in exactly one batch; the batch order is then shuffled by the training loop.
/// </remarks>
internal static class LengthGroupedBatches
{
    public static IReadOnlyList<TokenizedSequence[]> Build(IReadOnlyList<TokenizedSequence> sequences, int tokensPerBatch, int seed, int window = 64)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        if (tokensPerBatch < 1) throw new ArgumentOutOfRangeException(nameof(tokensPerBatch), tokensPerBatch, "Must be at least 1.");
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), window, "Must be at least 1.");
        var order = Enumerable.Range(0, sequences.Count).ToArray();
        new Random(StableSeed.Mix(seed, 0x1e9)).Shuffle(order);

        double meanLength = sequences.Count == 0 ? 1 : sequences.Average(s => s.Ids.Length);
        int windowSize = Math.Max(1, (int)(window * Math.Max(1, tokensPerBatch / meanLength)));
        var batches = new List<TokenizedSequence[]>();
        for (int start = 0; start < order.Length; start += windowSize)
        {
            // Stable sort by length (ties keep the shuffled order), so the result depends on the seed only.
            var chunk = order.Skip(start).Take(windowSize).Select(i => sequences[i]).OrderBy(s => s.Ids.Length).ToList();
            var current = new List<TokenizedSequence>();
            int longest = 0;
            foreach (var s in chunk)
            {
                int nextLongest = Math.Max(longest, s.Ids.Length);
                if (current.Count > 0 && (current.Count + 1) * nextLongest > tokensPerBatch)
                {
                    batches.Add(current.ToArray());
                    current.Clear();
                    nextLongest = s.Ids.Length;
                }
                current.Add(s);
                longest = nextLongest;
            }
            if (current.Count > 0) batches.Add(current.ToArray());
        }
        return batches;
    }
}
