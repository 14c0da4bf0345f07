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
        if (logits.device_type == DeviceType.CPU && logits.dim() == 2 && InCSharp) return SampleOnCpu(logits, temperature, topP, uniform);
        return SampleWithTorch(logits, temperature, topP, uniform);
    }

    /// <summary>Process-wide switch: false samples CPU logits with libtorch's operations too (tests compare both).</summary>
    internal static bool InCSharp { get; set; } = true;

    /// <summary>
    /// The same rule row by row in C#, for logits on the CPU: each libtorch operation above spelled out in float32 as
    /// libtorch computes it (its cumulative sum runs in double and rounds each entry to float), tokens of equal
    /// logits in id order. At a decoding step of 100 rows this takes a tenth of the time of libtorch's dozen small
    /// operations. Their exponentials may differ in the last bit, so a draw within that of a boundary between two
    /// tokens could differ from <see cref="SampleWithTorch"/> (tested to agree on thousands of draws).
    /// </summary>
    private static Tensor SampleOnCpu(Tensor logits, IReadOnlyList<double> temperature, IReadOnlyList<double> topP, IReadOnlyList<double> uniform)
    {
        int n = (int)logits.shape[0], v = (int)logits.shape[1];
        using var values = logits.to(ScalarType.Float32).contiguous();
        var all = values.data<float>().ToArray();
        var tokens = new long[n];
        void Rows(int from, int to)
        {
            var scratch = new Scratch(v);
            for (int b = from; b < to; b++) tokens[b] = SampleRow(all.AsSpan(b * v, v), temperature[b], topP[b], uniform[b], scratch);
        }
        // Rows are independent: a few groups over the cores where there are many.
        int groups = n >= 32 ? Math.Min(Environment.ProcessorCount, n / 16) : 1;
        if (groups <= 1) Rows(0, n);
        else Parallel.For(0, groups, g => Rows(n * g / groups, n * (g + 1) / groups));
        return torch.tensor(tokens, device: logits.device);
    }

    /// <summary>One row's buffers, of the vocabulary's size.</summary>
    internal sealed class Scratch(int v)
    {
        public readonly ulong[] Order = new ulong[v];
        public readonly float[] Probs = new float[v], Cdf = new float[v];
    }

    /// <summary>One row's token (see <see cref="SampleOnCpu"/>).</summary>
    internal static int SampleRow(ReadOnlySpan<float> logits, double temperature, double topP, double u, Scratch scratch)
    {
        int v = logits.Length;
        if (temperature == 0)
        {
            // argmax, the first of equal maxima (a NaN counts as the largest, as in libtorch).
            int best = 0;
            for (int i = 1; i < v; i++) if (logits[i] > logits[best] || (float.IsNaN(logits[i]) && !float.IsNaN(logits[best]))) best = i;
            return best;
        }
        float t = (float)temperature;
        var order = scratch.Order;
        var probs = scratch.Probs;
        var cdf = scratch.Cdf;
        // Descending by value, ties in id order: each entry the value's order-preserving bits, inverted, above the id.
        for (int i = 0; i < v; i++)
        {
            uint bits = (uint)BitConverter.SingleToInt32Bits(logits[i] / t);
            uint ascending = (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
            order[i] = ((ulong)~ascending << 32) | (uint)i;
        }
        Array.Sort(order, 0, v);
        float max = logits[(int)(uint)order[0]] / t, sum = 0;
        for (int i = 0; i < v; i++) { probs[i] = MathF.Exp(logits[(int)(uint)order[i]] / t - max); sum += probs[i]; }
        float inverse = 1f / sum;
        double running = 0;
        for (int i = 0; i < v; i++) { probs[i] *= inverse; running += probs[i]; cdf[i] = (float)running; }
        float p = topP >= 1 ? float.PositiveInfinity : (float)topP;
        int kept = 0, positive = 0;
        for (int i = 0; i < v; i++)
        {
            if (cdf[i] - probs[i] <= p) kept++;
            if (probs[i] > 0) positive++;
        }
        int last = Math.Max(Math.Min(kept, positive), 1) - 1;
        float target = (float)u * cdf[last];
        int below = 0;
        for (int i = 0; i < v; i++) if (cdf[i] <= target) below++;
        return (int)(uint)order[Math.Min(below, last)];
    }

    /// <summary>The rule in libtorch operations, on any device.</summary>
    internal static Tensor SampleWithTorch(Tensor logits, IReadOnlyList<double> temperature, IReadOnlyList<double> topP, IReadOnlyList<double> uniform)
    {
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
