using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Next tokens for a batch in which every row has its own temperature, top-p and uniform number: argmax where the
/// temperature is 0, else a categorical draw by inverse CDF — the tokens sorted by probability, the nucleus kept
/// (a token is dropped when those ranked above it already reach top-p, as <see cref="TextGenerator.Sample"/> does),
/// and the first token whose cumulative probability exceeds u × (the nucleus's mass) taken. Each row's token depends
/// on its own logits and number only.
/// </summary>
internal static class RowSampler
{
    /// <param name="logits">[n, V].</param>
    /// <param name="temperature">Per row; 0 is greedy.</param>
    /// <param name="topP">Per row, in (0, 1].</param>
    /// <param name="uniform">Per row, in [0, 1) (<see cref="RowRandom.Uniform"/>).</param>
    /// <returns>Token ids [n] (Int64, on the logits' device).</returns>
    public static Tensor Sample(Tensor logits, IReadOnlyList<double> temperature, IReadOnlyList<double> topP, IReadOnlyList<double> uniform)
    {
        long n = logits.shape[0];
        if (temperature.Count != n || topP.Count != n || uniform.Count != n) throw new ArgumentException("One temperature, top-p and uniform number per row.");
        using var scope = torch.NewDisposeScope();
        var device = logits.device;
        var l = logits.to(ScalarType.Float32);
        bool anyGreedy = temperature.Any(t => t == 0), anySampled = temperature.Any(t => t != 0);
        var greedy = anyGreedy ? l.argmax(-1) : null;
        if (!anySampled) return greedy!.MoveToOuterDisposeScope();

        Tensor Column(IEnumerable<double> values) => torch.tensor(values.Select(v => (float)v).ToArray(), device: device).unsqueeze(1);
        var scaled = l / Column(temperature.Select(t => t == 0 ? 1.0 : t));
        var (sorted, order) = scaled.sort(-1, descending: true);
        var probs = sorted.softmax(-1);
        var cdf = probs.cumsum(-1);
        // The nucleus is a prefix of the sorted tokens (the first always stays); so are the tokens of non-zero probability.
        // Top-p 1 keeps every token (as the plain path does), whatever the rounding of the cumulative sum.
        var kept = (cdf - probs).le(Column(topP.Select(p => p >= 1 ? double.PositiveInfinity : p))).sum(-1);
        var positive = probs.gt(Num(0.0)).sum(-1);
        var last = torch.minimum(kept, positive).clamp_min(Num(1L)) - Num(1L);      // index of the nucleus's last possible token
        var mass = cdf.gather(-1, last.unsqueeze(1));
        var target = Column(uniform) * mass;
        // The first token whose cumulative probability exceeds the target; rounding can never pick past the nucleus.
        var index = torch.minimum(cdf.le(target).sum(-1), last);
        var token = order.gather(-1, index.unsqueeze(1)).squeeze(1);
        if (anyGreedy)
        {
            var isGreedy = torch.tensor(temperature.Select(t => t == 0).ToArray(), device: device);
            token = torch.where(isGreedy, greedy!, token);
        }
        return token.MoveToOuterDisposeScope();
    }
}
