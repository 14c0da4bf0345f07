using System.Numerics;
using System.Runtime.CompilerServices;
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

    /// <summary>Query heads, kv heads, slots per cache row, head size.</summary>
    internal readonly record struct Shape(int Heads, int Kv, int Capacity, int D);

    private static void Run<T>(Tensor q, Tensor keys, Tensor values, Tensor output, IReadOnlyList<SlotSpan> spans, int[] order, Shape s)
        where T : unmanaged, IFloatingPointIeee754<T>, IExponentialFunctions<T>
    {
        int rows = order.Length, scratchLength = 4 * spans.Max(x => x.Length);
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
    /// Row b in float32 with AVX2/FMA (d a multiple of 8): for each query head, one pass over the keys (the shared
    /// prompt's, then the row's own) for the scores and one over the values with the output held in registers, 32 floats
    /// of it at a time.
    /// </summary>
    private static unsafe void RowFloat(Tensor qt, Tensor kt, Tensor vt, Tensor ot, SlotSpan span, Shape s, int b, float[] scratch)
    {
        fixed (byte* qb = qt.bytes, kb = kt.bytes, vb = vt.bytes, ob = ot.bytes)
        fixed (float* buffer = scratch)
        {
            long row = (long)b * s.Heads * s.D;
            RowFloat((float*)qb + row, (float*)kb, (float*)vb, (float*)ob + row, span, s, b, buffer);
        }
    }

    /// <summary>
    /// The float path on raw memory: <paramref name="q"/> and <paramref name="o"/> are this row's [heads, d] query and
    /// output, <paramref name="k"/> and <paramref name="v"/> a layer's whole cache [rows, kv, capacity, d], row b the
    /// row's own cache row; <paramref name="buffer"/> holds 4 × span.Length floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void RowFloat(float* q, float* k, float* v, float* o, SlotSpan span, Shape s, int b, float* buffer)
    {
        int d = s.D, rep = s.Heads / s.Kv, len = span.Length, shared = span.Shared;
        float scale = 1f / MathF.Sqrt(d);
        if (d == 32 && Avx512F.IsSupported && Wide512Enabled)
        {
            RowFloat32(q, k, v, o, span, s, b, buffer);
            return;
        }
        {
            float* scores = buffer, probs = buffer + len;
            for (int h = 0; h < s.Kv; h++)
            {
                long promptBase = (long)((span.PromptRow * s.Kv + h) * s.Capacity) * d, ownBase = (long)((b * s.Kv + h) * s.Capacity) * d;
                for (int r = 0; r < rep; r++)
                {
                    int head = h * rep + r;
                    float* query = q + (long)head * d;
                    // Slots below `shared` are the prompt's row, the rest the row's own: two contiguous runs.
                    Scores(query, k + promptBase, 0, shared, d, scale, scores);
                    Scores(query, k + ownBase, shared, len, d, scale, scores);
                    TensorPrimitives.SoftMax(new ReadOnlySpan<float>(scores, len), new Span<float>(probs, len));
                    float* output = o + (long)head * d;
                    for (int c = 0; c < d; c += 32)
                    {
                        int width = Math.Min(32, d - c);
                        var acc0 = Vector256<float>.Zero; var acc1 = Vector256<float>.Zero; var acc2 = Vector256<float>.Zero; var acc3 = Vector256<float>.Zero;
                        Weigh(v + promptBase + c, 0, shared, d, width, probs, ref acc0, ref acc1, ref acc2, ref acc3);
                        Weigh(v + ownBase + c, shared, len, d, width, probs, ref acc0, ref acc1, ref acc2, ref acc3);
                        Avx.Store(output + c, acc0);
                        if (width > 8) Avx.Store(output + c + 8, acc1);
                        if (width > 16) Avx.Store(output + c + 16, acc2);
                        if (width > 24) Avx.Store(output + c + 24, acc3);
                    }
                }
            }
        }
    }

    /// <summary>Process-wide switch of the AVX-512 path for head size 32 (tests compare it with the AVX2 one).</summary>
    internal static bool Wide512Enabled { get; set; } = true;

    /// <summary>Process-wide switch of the head-size-32 path's software prefetch (benchmarks compare).</summary>
    internal static bool PrefetchEnabled { get; set; } = true;

    /// <summary>
    /// Head size 32 with AVX-512: the query heads of a kv head two at a time, so that each key and value is loaded
    /// once for both (a key is two registers; each head's scores one fused multiply-add and a horizontal sum).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void RowFloat32(float* q, float* k, float* v, float* o, SlotSpan span, Shape s, int b, float* buffer)
    {
        const int d = 32;
        int rep = s.Heads / s.Kv, len = span.Length, shared = span.Shared;
        float scale = 1f / MathF.Sqrt(d);
        float* scoresA = buffer, scoresB = buffer + len, probsA = buffer + 2 * len, probsB = buffer + 3 * len;
        for (int h = 0; h < s.Kv; h++)
        {
            long promptBase = (long)((span.PromptRow * s.Kv + h) * s.Capacity) * d, ownBase = (long)((b * s.Kv + h) * s.Capacity) * d;
            for (int r = 0; r < rep; r += 2)
            {
                int head = h * rep + r;
                bool pair = r + 1 < rep;
                float* qa = q + (long)head * d, qb = pair ? qa + d : qa;
                var qa0 = Avx512F.LoadVector512(qa); var qa1 = Avx512F.LoadVector512(qa + 16);
                var qb0 = Avx512F.LoadVector512(qb); var qb1 = Avx512F.LoadVector512(qb + 16);
                // Slots below `shared` are the prompt's row, the rest the row's own: two contiguous runs.
                for (int part = 0; part < 2; part++)
                {
                    float* keys = k + (part == 0 ? promptBase : ownBase);
                    float* ahead = v + (part == 0 ? promptBase : ownBase);
                    int from = part == 0 ? 0 : shared, to = part == 0 ? shared : len;
                    for (int j = from; j < to; j++)
                    {
                        float* key = keys + (long)j * d;
                        if (PrefetchEnabled)
                        {
                            // The values' lines come in while the keys' are read (the weighing pass reads them next),
                            // and the keys' a few slots ahead: a row's runs are too short for the hardware prefetcher.
                            Sse.Prefetch0(ahead + (long)j * d);
                            Sse.Prefetch0(ahead + (long)j * d + 16);
                            Sse.Prefetch0(key + 16 * d);
                            Sse.Prefetch0(key + 16 * d + 16);
                        }
                        var k0 = Avx512F.LoadVector512(key); var k1 = Avx512F.LoadVector512(key + 16);
                        scoresA[j] = Vector512.Sum(Avx512F.FusedMultiplyAdd(k1, qa1, Avx512F.Multiply(k0, qa0))) * scale;
                        scoresB[j] = Vector512.Sum(Avx512F.FusedMultiplyAdd(k1, qb1, Avx512F.Multiply(k0, qb0))) * scale;
                    }
                }
                FloatKernels.SoftMax(scoresA, probsA, len);
                if (pair) FloatKernels.SoftMax(scoresB, probsB, len);
                var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero; var b0 = Vector512<float>.Zero; var b1 = Vector512<float>.Zero;
                for (int part = 0; part < 2; part++)
                {
                    float* values = v + (part == 0 ? promptBase : ownBase);
                    int from = part == 0 ? 0 : shared, to = part == 0 ? shared : len;
                    for (int j = from; j < to; j++)
                    {
                        float* value = values + (long)j * d;
                        var v0 = Avx512F.LoadVector512(value); var v1 = Avx512F.LoadVector512(value + 16);
                        var pa = Vector512.Create(probsA[j]);
                        a0 = Avx512F.FusedMultiplyAdd(v0, pa, a0); a1 = Avx512F.FusedMultiplyAdd(v1, pa, a1);
                        var pb = Vector512.Create(probsB[j]);
                        b0 = Avx512F.FusedMultiplyAdd(v0, pb, b0); b1 = Avx512F.FusedMultiplyAdd(v1, pb, b1);
                    }
                }
                float* oa = o + (long)head * d;
                Avx512F.Store(oa, a0); Avx512F.Store(oa + 16, a1);
                if (pair) { Avx512F.Store(oa + d, b0); Avx512F.Store(oa + d + 16, b1); }
            }
        }
    }

    /// <summary>scores[j] = scale · q·key[j] for slots from..to-1 of a cache row (keys d floats apart).</summary>
    private static unsafe void Scores(float* query, float* keys, int from, int to, int d, float scale, float* scores)
    {
        if (d == 32)
        {
            // The common head size: the query in four registers.
            var q0 = Avx.LoadVector256(query); var q1 = Avx.LoadVector256(query + 8); var q2 = Avx.LoadVector256(query + 16); var q3 = Avx.LoadVector256(query + 24);
            for (int j = from; j < to; j++)
            {
                float* key = keys + (long)j * 32;
                var acc = Avx.Multiply(Avx.LoadVector256(key), q0);
                acc = Fma.MultiplyAdd(Avx.LoadVector256(key + 8), q1, acc);
                acc = Fma.MultiplyAdd(Avx.LoadVector256(key + 16), q2, acc);
                acc = Fma.MultiplyAdd(Avx.LoadVector256(key + 24), q3, acc);
                scores[j] = Vector256.Sum(acc) * scale;
            }
            return;
        }
        for (int j = from; j < to; j++)
        {
            float* key = keys + (long)j * d;
            var acc = Vector256<float>.Zero;
            for (int c = 0; c < d; c += 8) acc = Fma.MultiplyAdd(Avx.LoadVector256(key + c), Avx.LoadVector256(query + c), acc);
            scores[j] = Vector256.Sum(acc) * scale;
        }
    }

    /// <summary>acc += Σ probs[j] · value[j][0..width) over slots from..to-1 (width ≤ 32, a multiple of 8).</summary>
    private static unsafe void Weigh(float* values, int from, int to, int d, int width, float* probs,
        ref Vector256<float> acc0, ref Vector256<float> acc1, ref Vector256<float> acc2, ref Vector256<float> acc3)
    {
        Vector256<float> a0 = acc0, a1 = acc1, a2 = acc2, a3 = acc3;
        if (width == 32)
        {
            for (int j = from; j < to; j++)
            {
                float* value = values + (long)j * d;
                var p = Vector256.Create(probs[j]);
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(value), p, a0);
                a1 = Fma.MultiplyAdd(Avx.LoadVector256(value + 8), p, a1);
                a2 = Fma.MultiplyAdd(Avx.LoadVector256(value + 16), p, a2);
                a3 = Fma.MultiplyAdd(Avx.LoadVector256(value + 24), p, a3);
            }
        }
        else
        {
            for (int j = from; j < to; j++)
            {
                float* value = values + (long)j * d;
                var p = Vector256.Create(probs[j]);
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(value), p, a0);
                if (width > 8) a1 = Fma.MultiplyAdd(Avx.LoadVector256(value + 8), p, a1);
                if (width > 16) a2 = Fma.MultiplyAdd(Avx.LoadVector256(value + 16), p, a2);
            }
        }
        acc0 = a0; acc1 = a1; acc2 = a2; acc3 = a3;
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
