using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>Where a row of a decoding step finds its keys: slots 0..Shared-1 of row <see cref="PromptRow"/> (a prompt
/// prefilled once for several rows), then its own slots Shared..Length-1.</summary>
internal readonly record struct SlotSpan(int PromptRow, int Shared, int Length);

/// <summary>
/// Attention of one decoding step over a <see cref="SlotKvCache"/> on the CPU, reading each row's valid keys only.
/// SDPA over the batch must span the longest row and mask the rest of every shorter one; here row b reads its
/// <see cref="SlotSpan"/>: the prompt it shares with other rows (stored once, in the row that holds it) and then its
/// own slots. Rows that share a prompt are visited one after another, so the prompt's keys and values are read from
/// memory once for all of them. The same math as SDPA (scaled dot products, softmax, weighted values, in the cache's
/// precision), summed in another order.
/// </summary>
internal static class SlotAttention
{
    /// <summary>Process-wide switch: false leaves decoding attention to SDPA (tests and benchmarks compare both).</summary>
    internal static bool Enabled { get; set; } = true;

    /// <summary>Whether the kernel serves a cache of this dtype on this device.</summary>
    public static bool AppliesTo(ScalarType dtype, Device device) =>
        Enabled && device.type == DeviceType.CPU && dtype is ScalarType.Float32 or ScalarType.Float64;

    /// <summary>
    /// q [n, heads, 1, d] against keys/values [rows, kv, capacity, d], row b reading <paramref name="spans"/>[b]:
    /// the attention output [n, heads, 1, d].
    /// </summary>
    public static Tensor Attend(Tensor q, Tensor keys, Tensor values, IReadOnlyList<SlotSpan> spans)
    {
        long n = q.shape[0], heads = q.shape[1], d = q.shape[3], kv = keys.shape[1], capacity = keys.shape[2];
        if (q.shape[2] != 1 || spans.Count != n || heads % kv != 0) throw new ArgumentException("One query per row, one span per row, heads a multiple of kv heads.");
        if (spans.Any(s => s.Length < 1 || s.Shared < 0 || s.Shared > s.Length || s.Length > capacity || s.PromptRow < 0 || s.PromptRow >= keys.shape[0]))
            throw new ArgumentException("A span lies outside the cache.", nameof(spans));
        using var qc = q.contiguous();
        var output = torch.empty(q.shape, dtype: q.dtype, device: q.device);
        var shape = new Shape((int)heads, (int)kv, (int)capacity, (int)d);
        // Rows sharing a prompt one after another (stable: the batch order otherwise).
        var order = Enumerable.Range(0, (int)n).OrderBy(b => spans[b].Shared > 0 ? spans[b].PromptRow : b).ToArray();
        if (q.dtype == ScalarType.Float32) Run<float>(qc, keys, values, output, spans, order, shape);
        else Run<double>(qc, keys, values, output, spans, order, shape);
        return output;
    }

    private readonly record struct Shape(int Heads, int Kv, int Capacity, int D);

    private static void Run<T>(Tensor q, Tensor keys, Tensor values, Tensor output, IReadOnlyList<SlotSpan> spans, int[] order, Shape s)
        where T : unmanaged, IFloatingPointIeee754<T>, IExponentialFunctions<T>
    {
        int rows = order.Length, scratchLength = 2 * (s.Heads / s.Kv) * spans.Max(x => x.Length);
        bool vectorized = typeof(T) == typeof(float) && s.D % 8 == 0 && Avx.IsSupported && Fma.IsSupported && VectorizedEnabled;
        void Rows(int from, int to, T[] scratch)
        {
            for (int i = from; i < to; i++)
            {
                if (vectorized) RowFloat(q, keys, values, output, spans[order[i]], s, order[i], (float[])(object)scratch);
                else Row(q, keys, values, output, spans[order[i]], s, order[i], scratch);
            }
        }
        int threads = Math.Max(1, Math.Min(torch.get_num_threads(), rows));
        if (threads == 1)
        {
            Rows(0, rows, new T[scratchLength]);
            return;
        }
        // Contiguous runs of the order per worker, so rows sharing a prompt mostly stay on one thread.
        int chunks = Math.Min(rows, threads * 8);
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, () => new T[scratchLength],
            (c, _, scratch) => { Rows(rows * c / chunks, rows * (c + 1) / chunks, scratch); return scratch; }, _ => { });
    }

    /// <summary>Process-wide switch of the AVX2/FMA float path (tests compare it with the portable one).</summary>
    internal static bool VectorizedEnabled { get; set; } = true;

    /// <summary>
    /// Row b in float32 with AVX2/FMA (d a multiple of 8): each key and value row is loaded once for all the query heads
    /// of its kv group, products accumulated in 8-lane registers.
    /// </summary>
    private static unsafe void RowFloat(Tensor qt, Tensor kt, Tensor vt, Tensor ot, SlotSpan span, Shape s, int b, float[] scratch)
    {
        int d = s.D, rep = s.Heads / s.Kv, len = span.Length, shared = span.Shared, chunks = d / 8;
        float scale = 1f / MathF.Sqrt(d);
        fixed (byte* qb = qt.bytes, kb = kt.bytes, vb = vt.bytes, ob = ot.bytes)
        fixed (float* buffer = scratch)
        {
            float* q = (float*)qb, k = (float*)kb, v = (float*)vb, o = (float*)ob, scores = buffer, probs = buffer + rep * len;
            for (int h = 0; h < s.Kv; h++)
            {
                float* promptKeys = k + (long)((span.PromptRow * s.Kv + h) * s.Capacity) * d, ownKeys = k + (long)((b * s.Kv + h) * s.Capacity) * d;
                float* promptValues = v + (long)((span.PromptRow * s.Kv + h) * s.Capacity) * d, ownValues = v + (long)((b * s.Kv + h) * s.Capacity) * d;
                float* queries = q + (long)(b * s.Heads + h * rep) * d;
                for (int j = 0; j < len; j++)
                {
                    float* key = (j < shared ? promptKeys : ownKeys) + (long)j * d;
                    for (int r = 0; r < rep; r++)
                    {
                        float* query = queries + r * d;
                        var acc = Vector256<float>.Zero;
                        for (int c = 0; c < chunks; c++)
                            acc = Fma.MultiplyAdd(Avx.LoadVector256(key + 8 * c), Avx.LoadVector256(query + 8 * c), acc);
                        scores[r * len + j] = Vector256.Sum(acc) * scale;
                    }
                }
                for (int r = 0; r < rep; r++)
                    TensorPrimitives.SoftMax(new ReadOnlySpan<float>(scores + r * len, len), new Span<float>(probs + r * len, len));

                float* outs = o + (long)(b * s.Heads + h * rep) * d;
                new Span<float>(outs, rep * d).Clear();
                for (int j = 0; j < len; j++)
                {
                    float* value = (j < shared ? promptValues : ownValues) + (long)j * d;
                    for (int c = 0; c < chunks; c++)
                    {
                        var vv = Avx.LoadVector256(value + 8 * c);
                        for (int r = 0; r < rep; r++)
                        {
                            float* dst = outs + r * d + 8 * c;
                            Avx.Store(dst, Fma.MultiplyAdd(Vector256.Create(probs[r * len + j]), vv, Avx.LoadVector256(dst)));
                        }
                    }
                }
            }
        }
    }

    /// <summary>Row b, any precision and head size (TensorPrimitives per key).</summary>
    private static void Row<T>(Tensor qt, Tensor kt, Tensor vt, Tensor ot, SlotSpan span, Shape s, int b, T[] scratch)
        where T : unmanaged, IFloatingPointIeee754<T>, IExponentialFunctions<T>
    {
        // Spans cannot be captured by the parallel loop; each row takes its own views of the native buffers.
        var q = MemoryMarshal.Cast<byte, T>(qt.bytes);
        var k = MemoryMarshal.Cast<byte, T>(kt.bytes);
        var v = MemoryMarshal.Cast<byte, T>(vt.bytes);
        var o = MemoryMarshal.Cast<byte, T>(ot.bytes);
        int d = s.D, rep = s.Heads / s.Kv, len = span.Length, shared = span.Shared;
        T scale = T.One / T.Sqrt(T.CreateChecked(d));
        var scores = scratch.AsSpan(0, len);
        var probs = scratch.AsSpan(len, len);
        for (int h = 0; h < s.Kv; h++)
        {
            // Slot j of this row: the shared prompt's row below `shared`, its own row from there.
            int promptBase = ((span.PromptRow * s.Kv + h) * s.Capacity) * d, ownBase = ((b * s.Kv + h) * s.Capacity) * d;
            int Slot(int j) => (j < shared ? promptBase : ownBase) + j * d;
            for (int r = 0; r < rep; r++)
            {
                int head = h * rep + r;
                var query = q.Slice((b * s.Heads + head) * d, d);
                for (int j = 0; j < len; j++)
                    scores[j] = TensorPrimitives.Dot(query, k.Slice(Slot(j), d)) * scale;
                TensorPrimitives.SoftMax(scores, probs);
                var outRow = o.Slice((b * s.Heads + head) * d, d);
                outRow.Clear();
                for (int j = 0; j < len; j++)
                    TensorPrimitives.MultiplyAdd(v.Slice(Slot(j), d), probs[j], outRow, outRow);
            }
        }
    }
}
