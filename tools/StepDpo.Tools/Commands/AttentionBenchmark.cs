using System.Diagnostics;
using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace StepDpo.Tools;

/// <summary>
/// Whole-sequence bf16 attention, forward and forward + backward: <see cref="SequenceAttention"/> against libtorch's
/// SDPA (kv heads repeated, the path it replaces), alternated in one run, best of the repetitions. Shapes are the real
/// models' attention in the LoRA bench's Step-DPO batches: 0.5B (4 packed pairs of 342 tokens, the prefix-shared
/// mask), 1.5B (the same batch) and the 7B shape (1 pair of 199 tokens).
/// </summary>
internal static class AttentionBenchmark
{
    private sealed record Case(string Name, int Batch, int Heads, int Kv, int Tokens, int Head);

    public static void Run(Dictionary<string, object> r, bool quick)
    {
        var cases = new[]
        {
            new Case("0p5b", 4, 14, 2, 342, 64),
            new Case("1p5b", 4, 12, 2, 342, 128),
            new Case("7b", 1, 28, 4, 199, 128),
        };
        int reps = quick ? 3 : 7;
        foreach (var c in cases)
        {
            using var scope = torch.NewDisposeScope();
            var gen = new Generator(1);
            var q = torch.randn(new long[] { c.Batch, c.Tokens, c.Heads, c.Head }, generator: gen).to(ScalarType.BFloat16).transpose(1, 2);
            var k = torch.randn(new long[] { c.Batch, c.Tokens, c.Kv, c.Head }, generator: gen).to(ScalarType.BFloat16).transpose(1, 2);
            var v = torch.randn(new long[] { c.Batch, c.Tokens, c.Kv, c.Head }, generator: gen).to(ScalarType.BFloat16).transpose(1, 2);
            var g = torch.randn(new long[] { c.Batch, c.Tokens, c.Heads * c.Head }, generator: gen).to(ScalarType.BFloat16);
            var mask = PrefixSharedMask(c.Batch, c.Tokens);
            double kFwd = double.MaxValue, kBoth = double.MaxValue, sFwd = double.MaxValue, sBoth = double.MaxValue;
            for (int i = -1; i < reps; i++)   // round -1 warms both paths up and is not counted
            {
                double kf = Time(() => SequenceAttention.Attend(q, k, v, mask), q, k, v, g, backward: false);
                double sf = Time(() => Sdpa(q, k, v, mask), q, k, v, g, backward: false);
                double kb = Time(() => SequenceAttention.Attend(q, k, v, mask), q, k, v, g, backward: true);
                double sb = Time(() => Sdpa(q, k, v, mask), q, k, v, g, backward: true);
                if (i < 0) continue;
                (kFwd, sFwd, kBoth, sBoth) = (Math.Min(kFwd, kf), Math.Min(sFwd, sf), Math.Min(kBoth, kb), Math.Min(sBoth, sb));
            }
            r[$"attention_{c.Name}_sdpa_fwd_ms"] = sFwd;
            r[$"attention_{c.Name}_kernel_fwd_ms"] = kFwd;
            r[$"attention_{c.Name}_sdpa_fwd_bwd_ms"] = sBoth;
            r[$"attention_{c.Name}_kernel_fwd_bwd_ms"] = kBoth;
            r[$"attention_{c.Name}_speedup_fwd_bwd"] = sBoth / kBoth;
            Console.WriteLine($"attention {c.Name} (B {c.Batch}, heads {c.Heads}/{c.Kv}, T {c.Tokens}, d {c.Head}): forward SDPA {sFwd:F1} ms, kernel {kFwd:F1} ms; forward+backward SDPA {sBoth:F1} ms, kernel {kBoth:F1} ms ({sBoth / kBoth:F2}x)");
        }
    }

    private static double Time(Func<Tensor> attention, Tensor q, Tensor k, Tensor v, Tensor g, bool backward)
    {
        using var scope = torch.NewDisposeScope();
        foreach (var t in new[] { q, k, v }) { t.grad?.Dispose(); t.requires_grad_(backward); }
        var sw = Stopwatch.StartNew();
        var y = attention();
        if (backward) y.backward(new[] { g });
        double ms = sw.Elapsed.TotalMilliseconds;
        foreach (var t in new[] { q, k, v }) { t.grad?.Dispose(); t.requires_grad_(false); }
        return ms;
    }

    private static Tensor Sdpa(Tensor q, Tensor k, Tensor v, Tensor mask)
    {
        long b = q.shape[0], heads = q.shape[1], t = q.shape[2], d = q.shape[3], group = heads / k.shape[1];
        k = k.unsqueeze(2).expand(b, k.shape[1], group, t, d).reshape(b, heads, t, d);
        v = v.unsqueeze(2).expand(b, v.shape[1], group, t, d).reshape(b, heads, t, d);
        return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: mask).transpose(1, 2).reshape(b, t, heads * d);
    }

    /// <summary>Each row a pair packed as [prefix 87%][chosen tail][rejected tail], the rejected tail blind to the chosen one.</summary>
    private static Tensor PrefixSharedMask(int batch, int t)
    {
        int tail = t * 65 / 1000, s = t - 2 * tail, c = s + tail;
        var m = new bool[batch, 1, t, t];
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < t; i++)
                for (int j = 0; j <= i; j++) m[b, 0, i, j] = !(i >= c && j >= s && j < c);
        return torch.tensor(m);
    }
}
