using System.Diagnostics;
using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace StepDpo.Tools;

/// <summary>
/// A decoding step's attention over the slot cache at the demo model's shape (128 rows, 4 query heads over 2 kv heads
/// of 32, 4 layers; groups of 6 rows reading one 100-slot prompt, 1-160 own slots each, as in stage b), one thread,
/// with and without the kernel's software prefetch (interleaved, best of 5 rounds of 20 steps each). The cache (25 MB
/// read per step) does not stay in the CPU's caches between layers, as in generation.
/// </summary>
internal static class SlotAttentionBenchmark
{
    public static void Run(Dictionary<string, object> r)
    {
        int rows = 128, kv = 2, heads = 4, d = 32, capacity = 384, layers = 4, steps = 20;
        int threads = torch.get_num_threads();
        torch.set_num_threads(1);
        try
        {
            using var scope = torch.NewDisposeScope();
            var gen = new Generator(1);
            var keys = Enumerable.Range(0, layers).Select(_ => torch.randn(new long[] { rows, kv, capacity, d }, generator: gen)).ToArray();
            var values = Enumerable.Range(0, layers).Select(_ => torch.randn(new long[] { rows, kv, capacity, d }, generator: gen)).ToArray();
            var q = torch.randn(new long[] { rows, heads, 1, d }, generator: gen);
            var rnd = new Random(2);
            var spans = Enumerable.Range(0, rows).Select(b => new SlotSpan(b / 6 * 6, 100, 101 + rnd.Next(160))).ToArray();
            double megabytes = (spans.Sum(s => (double)(s.Length - s.Shared)) + rows / 6.0 * 100) * kv * d * 4 * 2 * layers / 1e6;
            double Time(bool prefetch)
            {
                SlotAttention.PrefetchEnabled = prefetch;
                var sw = Stopwatch.StartNew();
                for (int s = 0; s < steps; s++)
                    for (int l = 0; l < layers; l++)
                        SlotAttention.Attend(q, keys[l], values[l], spans).Dispose();
                return sw.Elapsed.TotalMilliseconds / steps;
            }
            Time(true); Time(false);   // warm-up
            var with = new List<double>(); var without = new List<double>();
            for (int round = 0; round < 5; round++) { with.Add(Time(true)); without.Add(Time(false)); }
            r["slot_attention_step_ms_prefetch"] = with.Min();
            r["slot_attention_step_ms_no_prefetch"] = without.Min();
            r["slot_attention_megabytes_per_step"] = megabytes;
            Console.WriteLine($"slot attention, {rows} rows x {layers} layers ({megabytes:F1} MB of keys and values a step): prefetch {with.Min():F2} ms a step, " +
                              $"without {without.Min():F2} ms ({without.Min() / with.Min():F2}x); best of 5");
        }
        finally
        {
            SlotAttention.PrefetchEnabled = true;
            torch.set_num_threads(threads);
        }
    }
}
