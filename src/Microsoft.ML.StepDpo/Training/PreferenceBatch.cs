using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// Model inputs for a batch of pairs plus where to read each response token's log-probability.
/// Two layouts produce it: <see cref="BuildConcatenated"/> (the plain path: every pair as two rows,
/// context+chosen and context+rejected, causal attention) and <see cref="BuildPrefixShared"/> (one row per
/// pair, [shared prefix][chosen][rejected], rejected positions restart after the prefix and rejected tokens
/// cannot see chosen tokens). Both give the same log-probabilities (arXiv 2410.20305).
/// </summary>
internal sealed class PreferenceBatch
{
    /// <summary>[R, T] token ids (right-padded with 0).</summary>
    public required long[,] InputIds { get; init; }
    /// <summary>[R, T] RoPE positions.</summary>
    public required long[,] PositionIds { get; init; }
    /// <summary>[R, T, T] may-attend mask (query, key), or null for plain causal attention.</summary>
    public bool[,,]? AttentionMask { get; init; }
    /// <summary>Labelled tokens: row, the position whose logits predict the token, the token id, pair index, side (0 chosen, 1 rejected).</summary>
    public required LabelledToken[] Labels { get; init; }
    public required int Pairs { get; init; }
    /// <summary>Non-padding tokens fed to the model (for tokens/s).</summary>
    public required int InputTokens { get; init; }

    public int Rows => InputIds.GetLength(0);
    public int Length => InputIds.GetLength(1);

    internal readonly record struct LabelledToken(int Row, int Position, int Target, int Pair, int Side);

    /// <summary>Plain path: 2B rows (chosen rows 0..B-1, rejected rows B..2B-1), causal attention.</summary>
    public static PreferenceBatch BuildConcatenated(IReadOnlyList<TokenizedPair> pairs)
    {
        int b = pairs.Count;
        if (b == 0) throw new ArgumentException("Empty batch.", nameof(pairs));
        int t = 0;
        foreach (var p in pairs) { p.Validate(); t = Math.Max(t, Math.Max(p.Chosen.Length, p.Rejected.Length)); }
        var ids = new long[2 * b, t];
        var pos = new long[2 * b, t];
        var labels = new List<LabelledToken>();
        int tokens = 0;
        for (int i = 0; i < b; i++)
        {
            for (int side = 0; side < 2; side++)
            {
                int row = side * b + i;
                var seq = side == 0 ? pairs[i].Chosen : pairs[i].Rejected;
                int start = side == 0 ? pairs[i].ChosenResponseStart : pairs[i].RejectedResponseStart;
                for (int j = 0; j < t; j++) { ids[row, j] = j < seq.Length ? seq[j] : 0; pos[row, j] = j; }
                for (int j = start; j < seq.Length; j++) labels.Add(new(row, j - 1, seq[j], i, side));
                tokens += seq.Length;
            }
        }
        return new PreferenceBatch { InputIds = ids, PositionIds = pos, AttentionMask = null, Labels = labels.ToArray(), Pairs = b, InputTokens = tokens };
    }

    /// <summary>Prefix-shared path: one row per pair, [prefix][chosen tail][rejected tail].</summary>
    public static PreferenceBatch BuildPrefixShared(IReadOnlyList<TokenizedPair> pairs)
    {
        int b = pairs.Count;
        if (b == 0) throw new ArgumentException("Empty batch.", nameof(pairs));
        var lens = new int[b];
        int t = 0;
        for (int i = 0; i < b; i++)
        {
            var p = pairs[i];
            p.Validate();
            int s = p.SharedPrefixLength;
            lens[i] = p.Chosen.Length + (p.Rejected.Length - s);
            t = Math.Max(t, lens[i]);
        }
        var ids = new long[b, t];
        var pos = new long[b, t];
        var mask = new bool[b, t, t];
        var labels = new List<LabelledToken>();
        int tokens = 0;
        for (int i = 0; i < b; i++)
        {
            var p = pairs[i];
            int s = p.SharedPrefixLength;          // shared prefix: [0, s)
            int c = p.Chosen.Length;               // chosen tail:   [s, c)
            int rEnd = lens[i];                    // rejected tail: [c, rEnd), positions s.. again
            for (int j = 0; j < c; j++) { ids[i, j] = p.Chosen[j]; pos[i, j] = j; }
            for (int j = c; j < rEnd; j++) { ids[i, j] = p.Rejected[s + (j - c)]; pos[i, j] = s + (j - c); }
            for (int q = 0; q < t; q++)
            {
                if (q >= rEnd) { mask[i, q, q] = true; continue; } // padding attends to itself only (no empty rows)
                bool rejectedQuery = q >= c;
                for (int k = 0; k <= q; k++)
                    mask[i, q, k] = !(rejectedQuery && k >= s && k < c);
            }
            // Logits at index j predict the token after j in the same logical sequence.
            for (int j = p.ChosenResponseStart; j < c; j++) labels.Add(new(i, j - 1, p.Chosen[j], i, 0));
            for (int j = p.RejectedResponseStart; j < p.Rejected.Length; j++)
            {
                int prev = j - 1 < s ? j - 1 : c + (j - 1 - s); // packed index of the previous rejected-side token
                labels.Add(new(i, prev, p.Rejected[j], i, 1));
            }
            tokens += rEnd;
        }
        return new PreferenceBatch { InputIds = ids, PositionIds = pos, AttentionMask = mask, Labels = labels.ToArray(), Pairs = b, InputTokens = tokens };
    }

    /// <summary>Tensors for the model call.</summary>
    public (Tensor InputIds, Tensor PositionIds, Tensor? Mask) ToTensors(Device device)
    {
        var ids = torch.tensor(InputIds, device: device);
        var pos = torch.tensor(PositionIds, device: device);
        Tensor? mask = AttentionMask is null ? null : torch.tensor(AttentionMask, device: device).unsqueeze(1);
        return (ids, pos, mask);
    }
}
