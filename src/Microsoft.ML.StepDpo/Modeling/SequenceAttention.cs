using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Attention over a whole sequence (training and cache-free forwards) on the CPU for bf16 models, forward and
/// backward: softmax(q·kᵀ/√d, over the keys the mask allows)·v, with the query heads of a group reading their kv head
/// in place. The arithmetic is fp32 throughout (inputs widened exactly from bf16, scores, probabilities and gradients
/// kept in fp32, the result rounded once to bf16), so it is at least as exact as libtorch's flash kernel, which rounds
/// the probabilities and their gradients to bf16 before its second products.
/// </summary>
/// <remarks>
/// Why: on this project's AMD CPUs libtorch's flash attention takes MKL's generic bf16 path (widen, then fp32 GEMM
/// through small blocks) over every (query, key) pair of the mask's square, allowed or not; it was ~22% of a 0.5B LoRA
/// Step-DPO step. Here each block of four query rows multiplies only the keys up to the last one any of its rows may
/// see (causal attention: about half the square), with AVX-512 register tiles. Softmax is exact per row (the whole
/// row's scores are held), not flash's running rescale. The backward recomputes the probabilities from the saved
/// log-sum-exp, as flash attention does; each (batch row, kv head) is one task, so its key and value gradients have
/// one writer.
/// </remarks>
internal sealed class SequenceAttention : autograd.SingleTensorFunction<SequenceAttention>
{
    /// <summary>Process-wide switch: false leaves every forward to SDPA (tests and benchmarks compare both).</summary>
    internal static bool Enabled { get; set; } = true;

    /// <summary>Also serve fp32 models (tests use it to compare against fp64 tightly; fp32 models keep SDPA by default).</summary>
    internal static bool ServeFloat32 { get; set; }

    public override string Name => nameof(SequenceAttention);

    private const int Tile = 4;      // query rows per register tile
    private const int Lanes = 16;    // floats per Vector512

    /// <summary>
    /// Whether the kernel serves q [B, H, T, D] against k, v [B, kv, T, D] (the same T: no cache) under
    /// <paramref name="mask"/> (null: causal; else boolean [B or 1, 1, T, T], true = may attend).
    /// </summary>
    public static bool AppliesTo(Tensor q, Tensor k, Tensor? mask)
    {
        if (!Enabled || q.device_type != DeviceType.CPU || !Avx512F.IsSupported) return false;
        if (q.dtype != ScalarType.BFloat16 && !(ServeFloat32 && q.dtype == ScalarType.Float32)) return false;
        if (k.dtype != q.dtype || q.dim() != 4 || k.dim() != 4 || q.shape[3] % Lanes != 0 || q.shape[3] > 512) return false;
        long b = q.shape[0], t = q.shape[2];
        if (k.shape[0] != b || k.shape[2] != t || q.shape[1] % k.shape[1] != 0 || (long)b * t * t > int.MaxValue) return false;
        return mask is null || (mask.dtype == ScalarType.Bool && mask.device_type == DeviceType.CPU && mask.dim() == 4
            && (mask.shape[0] == b || mask.shape[0] == 1) && mask.shape[1] == 1 && mask.shape[2] == t && mask.shape[3] == t);
    }

    /// <summary>The attention of q [B, H, T, D] over k, v [B, kv, T, D] as [B, T, H·D] (the layout o_proj reads).</summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? mask) => apply(q, k, v, mask!);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (q, k, v, mask) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2], vars[3] as Tensor);
        using var scope = torch.NewDisposeScope();
        var dims = Dims.Of(q, k);
        using var maskBytes = mask?.contiguous();
        var ranges = KeyRanges(maskBytes, dims);
        var (qf, kf, vf) = (Float(q), Float(k), Float(v));
        var output = torch.empty(dims.B, dims.T, dims.H, dims.D, dtype: ScalarType.Float32);   // [B, T, H, D]: o_proj's input layout
        var lse = torch.empty(dims.B, dims.H, dims.T, dtype: ScalarType.Float32);
        Forward(dims, View.Of(qf), View.Of(kf), View.Of(vf), output, lse, maskBytes, ranges);
        GC.KeepAlive(qf); GC.KeepAlive(kf); GC.KeepAlive(vf);   // read through raw pointers above
        var y = output.view(dims.B, dims.T, dims.H * dims.D).to(q.dtype);
        // TorchSharp takes the saved tensors' native references after forward returns: they must outlive this scope.
        ctx.save_for_backward(new List<Tensor> { q, k, v, mask!, y.detach().MoveToOuterDisposeScope(), lse.MoveToOuterDisposeScope() });
        ctx.save_data("ranges", ranges);
        return y.MoveToOuterDisposeScope();
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var saved = ctx.get_saved_variables();
        var (q, k, v, mask, y, lse) = (saved[0], saved[1], saved[2], saved[3], saved[4], saved[5]);
        var ranges = (KeyRange[])ctx.get_data("ranges");
        using var scope = torch.NewDisposeScope();
        var dims = Dims.Of(q, k);
        var dO = gradOutput.to(ScalarType.Float32).contiguous().view(dims.B, dims.T, dims.H, dims.D);
        // δ_i = Σ_d dO_i·O_i per (row, head), from the output as returned (flash attention does the same).
        var delta = (dO * y.to(ScalarType.Float32).view(dims.B, dims.T, dims.H, dims.D)).sum(-1).permute(0, 2, 1).contiguous();   // [B, H, T]
        var (qf, kf, vf) = (Float(q), Float(k), Float(v));
        var dq = torch.empty(dims.B, dims.T, dims.H, dims.D, dtype: ScalarType.Float32);
        var dk = torch.empty(dims.B, dims.T, dims.Kv, dims.D, dtype: ScalarType.Float32);
        var dv = torch.empty(dims.B, dims.T, dims.Kv, dims.D, dtype: ScalarType.Float32);
        using var maskBytes = mask?.contiguous();
        Backward(dims, View.Of(qf), View.Of(kf), View.Of(vf), dO, delta, lse, maskBytes, ranges, dq, dk, dv);
        GC.KeepAlive(qf); GC.KeepAlive(kf); GC.KeepAlive(vf);   // read through raw pointers above
        var grads = new List<Tensor>
        {
            dq.transpose(1, 2).to(q.dtype).MoveToOuterDisposeScope(),
            dk.transpose(1, 2).to(k.dtype).MoveToOuterDisposeScope(),
            dv.transpose(1, 2).to(v.dtype).MoveToOuterDisposeScope(),
            null!,
        };
        return grads;
    }

    /// <summary>An fp32 copy (or the tensor itself) of q, k or v [B, heads, T, D], laid out [B, T, heads, D] contiguously.</summary>
    private static Tensor Float(Tensor t) => t.transpose(1, 2).to(ScalarType.Float32).contiguous();

    /// <summary>The first element of a contiguous CPU tensor (which must outlive the pointer's use).</summary>
    private static unsafe T* Pointer<T>(Tensor t) where T : unmanaged
    {
        fixed (byte* p = t.bytes) return (T*)p;
    }

    private readonly record struct Dims(int B, int H, int Kv, int T, int D)
    {
        public int Group => H / Kv;
        /// <summary>T rounded up to whole vectors: the transposed key/value scratch's row length.</summary>
        public int Padded => (T + Lanes - 1) / Lanes * Lanes;
        public static Dims Of(Tensor q, Tensor k) => new((int)q.shape[0], (int)q.shape[1], (int)k.shape[1], (int)q.shape[2], (int)q.shape[3]);
    }

    /// <summary>An fp32 tensor laid out [B, T, heads, D] (see <see cref="Float"/>): row t of head h of batch row b.</summary>
    private readonly unsafe struct View(float* data, long batch, long head, long row)
    {
        public long Row => row;
        public static View Of(Tensor t) => new(Pointer<float>(t), t.stride(0), t.stride(2), t.stride(1));
        public float* Rows(int b, int h) => data + b * batch + h * head;
    }

    /// <summary>Query row t may attend keys [0, End); <see cref="Dense"/>: all of them (else the mask says which).</summary>
    internal readonly record struct KeyRange(int End, bool Dense);

    /// <summary>Per (batch row, query): the allowed keys' end and whether every key before it is allowed (mask contiguous).</summary>
    private static KeyRange[] KeyRanges(Tensor? mask, Dims d)
    {
        var ranges = new KeyRange[d.B * d.T];
        if (mask is null)
        {
            for (int b = 0; b < d.B; b++)
                for (int t = 0; t < d.T; t++) ranges[b * d.T + t] = new KeyRange(t + 1, true);
            return ranges;
        }
        var bytes = mask.bytes;
        for (int b = 0; b < d.B; b++)
        {
            int mb = mask.shape[0] == 1 ? 0 : b;
            for (int t = 0; t < d.T; t++)
            {
                var row = bytes.Slice((mb * d.T + t) * d.T, d.T);
                int end = row.LastIndexOfAnyExcept((byte)0) + 1;
                ranges[b * d.T + t] = new KeyRange(end, row[..end].IndexOf((byte)0) < 0);
            }
        }
        return ranges;
    }

    /// <summary>
    /// Per-worker scratch: transposed keys [D, padded T] and a tile's score rows; for the backward also transposed
    /// values, the tile's score gradients and the kv head's key and value gradients [T, D].
    /// </summary>
    private sealed class Scratch(Dims d, bool backward)
    {
        public readonly float[] KeysT = new float[d.D * d.Padded];
        public readonly float[] Scores = new float[Tile * d.Padded];
        public readonly float[] ValuesT = backward ? new float[d.D * d.Padded] : [];
        public readonly float[] ScoreGrads = backward ? new float[Tile * d.Padded] : [];
        public readonly float[] KeyGrad = backward ? new float[d.T * d.D] : [];
        public readonly float[] ValueGrad = backward ? new float[d.T * d.D] : [];
    }

    private static void ForEach(int tasks, Dims d, bool backward, Action<int, Scratch> body)
    {
        int threads = Math.Max(1, Math.Min(torch.get_num_threads(), tasks));
        if (threads == 1)
        {
            var s = new Scratch(d, backward);
            for (int i = 0; i < tasks; i++) body(i, s);
            return;
        }
        Parallel.For(0, tasks, new ParallelOptions { MaxDegreeOfParallelism = threads }, () => new Scratch(d, backward),
            (i, _, s) => { body(i, s); return s; }, _ => { });
    }

    private static unsafe void Forward(Dims d, View q, View k, View v, Tensor output, Tensor lse, Tensor? mask, KeyRange[] ranges)
    {
        float scale = 1f / MathF.Sqrt(d.D);
        float* outBase = Pointer<float>(output), lseBase = Pointer<float>(lse);
        byte* maskBase = mask is null ? null : Pointer<byte>(mask);
        long maskBatch = mask is null || mask.shape[0] == 1 ? 0 : (long)d.T * d.T;
        // Fully optimized from the first call (no tiering): a training run's first steps, and benchmarks, see the same code.
        ForEach(d.B * d.H, d, backward: false, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (task, s) =>
        {
            int b = task / d.H, h = task % d.H, g = h / d.Group;
            fixed (float* keysT = s.KeysT, scores = s.Scores)
            {
                Transpose(k.Rows(b, g), k.Row, d, keysT);
                float* qRows = q.Rows(b, h), vRows = v.Rows(b, g);
                var rows = stackalloc float*[Tile];
                var outRows = stackalloc float*[Tile];
                for (int t0 = 0; t0 < d.T; t0 += Tile)
                {
                    int n = Math.Min(Tile, d.T - t0), end = 0;
                    for (int r = 0; r < Tile; r++)
                    {
                        int t = t0 + Math.Min(r, n - 1);   // a short last tile repeats its last row (computed, not stored)
                        rows[r] = qRows + t * q.Row;
                        end = Math.Max(end, ranges[b * d.T + t].End);
                    }
                    Scores(rows, keysT, d.Padded, d.D, (end + Lanes - 1) / Lanes, scores);
                    for (int r = 0; r < n; r++)
                    {
                        int t = t0 + r;
                        var range = ranges[b * d.T + t];
                        var row = new Span<float>(scores + r * d.Padded, end);
                        float logSumExp = Probabilities(row, range, scale, maskBase == null ? null : maskBase + b * maskBatch + (long)t * d.T);
                        lseBase[(b * d.H + h) * (long)d.T + t] = logSumExp;
                        outRows[r] = outBase + ((long)(b * d.T + t) * d.H + h) * d.D;
                    }
                    for (int r = n; r < Tile; r++) outRows[r] = null;
                    Weigh(scores, d.Padded, vRows, v.Row, end, d.D, outRows);
                }
            }
        });
    }

    /// <summary>
    /// Turns a row of raw scores into probabilities in place over [0, end of the tile): scaled, masked (−∞), then
    /// exp(s − max) / Σ; zero past the row's own end. Returns the row's log-sum-exp of the scaled scores.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Probabilities(Span<float> row, KeyRange range, float scale, byte* mask)
    {
        var own = row[..range.End];
        TensorPrimitives.Multiply(own, scale, own);
        if (!range.Dense)
            for (int j = 0; j < own.Length; j++)
                if (mask[j] == 0) own[j] = float.NegativeInfinity;
        row[range.End..].Clear();
        if (range.End == 0) return float.PositiveInfinity;   // no key allowed: output 0 (SDPA would give NaN)
        float max = TensorPrimitives.Max(own);
        TensorPrimitives.Subtract(own, max, own);
        TensorPrimitives.Exp(own, own);
        float sum = TensorPrimitives.Sum(own);
        TensorPrimitives.Multiply(own, 1f / sum, own);
        return max + MathF.Log(sum);
    }

    private static unsafe void Backward(Dims d, View q, View k, View v, Tensor dOut, Tensor delta, Tensor lse, Tensor? mask,
        KeyRange[] ranges, Tensor dq, Tensor dk, Tensor dv)
    {
        float scale = 1f / MathF.Sqrt(d.D);
        float* dOBase = Pointer<float>(dOut), deltaBase = Pointer<float>(delta), lseBase = Pointer<float>(lse);
        float* dqBase = Pointer<float>(dq), dkBase = Pointer<float>(dk), dvBase = Pointer<float>(dv);
        byte* maskBase = mask is null ? null : Pointer<byte>(mask);
        long maskBatch = mask is null || mask.shape[0] == 1 ? 0 : (long)d.T * d.T;
        long dORow = (long)d.H * d.D;   // dO, dq: [B, T, H, D]
        ForEach(d.B * d.Kv, d, backward: true, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (task, s) =>
        {
            int b = task / d.Kv, g = task % d.Kv;
            Array.Clear(s.KeyGrad);
            Array.Clear(s.ValueGrad);
            fixed (float* keysT = s.KeysT, valuesT = s.ValuesT, probs = s.Scores, dScores = s.ScoreGrads, keyGrad = s.KeyGrad, valueGrad = s.ValueGrad)
            {
                float* kRows = k.Rows(b, g), vRows = v.Rows(b, g);
                Transpose(kRows, k.Row, d, keysT);
                Transpose(vRows, v.Row, d, valuesT);
                var rows = stackalloc float*[Tile];
                var gradRows = stackalloc float*[Tile];
                var dqRows = stackalloc float*[Tile];
                for (int h = g * d.Group; h < (g + 1) * d.Group; h++)
                {
                    float* qRows = q.Rows(b, h);
                    for (int t0 = 0; t0 < d.T; t0 += Tile)
                    {
                        int n = Math.Min(Tile, d.T - t0), end = 0;
                        for (int r = 0; r < Tile; r++)
                        {
                            int t = t0 + Math.Min(r, n - 1);
                            rows[r] = qRows + t * q.Row;
                            gradRows[r] = dOBase + (long)(b * d.T + t) * dORow + h * d.D;
                            dqRows[r] = r < n ? dqBase + (long)(b * d.T + t) * dORow + h * d.D : null;
                            end = Math.Max(end, ranges[b * d.T + t].End);
                        }
                        int blocks = (end + Lanes - 1) / Lanes;
                        Scores(rows, keysT, d.Padded, d.D, blocks, probs);          // q·kᵀ
                        Scores(gradRows, valuesT, d.Padded, d.D, blocks, dScores);  // dO·vᵀ
                        for (int r = 0; r < Tile; r++)
                        {
                            var p = new Span<float>(probs + r * d.Padded, end);
                            var ds = new Span<float>(dScores + r * d.Padded, end);
                            if (r >= n) { p.Clear(); ds.Clear(); continue; }   // a short tile's repeated rows add nothing
                            int t = t0 + r;
                            var range = ranges[b * d.T + t];
                            long at = (b * d.H + h) * (long)d.T + t;
                            Recompute(p, range, scale, lseBase[at], maskBase == null ? null : maskBase + b * maskBatch + (long)t * d.T);
                            // dS = P ∘ (dP − δ), times the 1/√d of the scores for both q's and k's gradients.
                            TensorPrimitives.Subtract(ds, deltaBase[at], ds);
                            TensorPrimitives.Multiply(ds, p, ds);
                            TensorPrimitives.Multiply(ds, scale, ds);
                        }
                        Weigh(dScores, d.Padded, kRows, k.Row, end, d.D, dqRows);   // dq = dS·k
                        Accumulate(probs, d.Padded, gradRows, end, d.D, valueGrad);  // dv += Pᵀ·dO
                        Accumulate(dScores, d.Padded, rows, end, d.D, keyGrad);      // dk += dSᵀ·q
                    }
                }
                for (int t = 0; t < d.T; t++)
                {
                    long at = ((long)(b * d.T + t) * d.Kv + g) * d.D;
                    new Span<float>(keyGrad + t * d.D, d.D).CopyTo(new Span<float>(dkBase + at, d.D));
                    new Span<float>(valueGrad + t * d.D, d.D).CopyTo(new Span<float>(dvBase + at, d.D));
                }
            }
        });
    }

    /// <summary>The forward's probabilities again from the raw scores and the saved log-sum-exp; 0 where not allowed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Recompute(Span<float> row, KeyRange range, float scale, float logSumExp, byte* mask)
    {
        var own = row[..range.End];
        TensorPrimitives.Multiply(own, scale, own);
        TensorPrimitives.Subtract(own, logSumExp, own);
        TensorPrimitives.Exp(own, own);
        if (!range.Dense)
            for (int j = 0; j < own.Length; j++)
                if (mask[j] == 0) own[j] = 0;
        row[range.End..].Clear();
    }

    /// <summary>keysT[c, j] = rows[j, c] for j &lt; T, zero up to the padded length.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Transpose(float* rows, long rowStride, Dims d, float* keysT)
    {
        for (int j = 0; j < d.T; j++)
        {
            float* row = rows + j * rowStride;
            for (int c = 0; c < d.D; c++) keysT[c * d.Padded + j] = row[c];
        }
        for (int c = 0; c < d.D; c++)
            for (int j = d.T; j < d.Padded; j++) keysT[c * d.Padded + j] = 0;
    }

    /// <summary>
    /// out[r, j] = Σ_c rows[r][c] · keysT[c, j] for the four rows and keys [0, 16·blocks): four vectors of keys at a
    /// time (16 accumulators), then one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Scores(float** rows, float* keysT, int padded, int depth, int blocks, float* output)
    {
        float* r0 = rows[0], r1 = rows[1], r2 = rows[2], r3 = rows[3];
        int j = 0;
        for (; j + 4 <= blocks; j += 4)
        {
            Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default,
                a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
            float* col = keysT + j * Lanes;
            for (int c = 0; c < depth; c++, col += padded)
            {
                var k0 = Vector512.Load(col); var k1 = Vector512.Load(col + 16); var k2 = Vector512.Load(col + 32); var k3 = Vector512.Load(col + 48);
                var x = Vector512.Create(r0[c]);
                a00 = Avx512F.FusedMultiplyAdd(k0, x, a00); a01 = Avx512F.FusedMultiplyAdd(k1, x, a01); a02 = Avx512F.FusedMultiplyAdd(k2, x, a02); a03 = Avx512F.FusedMultiplyAdd(k3, x, a03);
                x = Vector512.Create(r1[c]);
                a10 = Avx512F.FusedMultiplyAdd(k0, x, a10); a11 = Avx512F.FusedMultiplyAdd(k1, x, a11); a12 = Avx512F.FusedMultiplyAdd(k2, x, a12); a13 = Avx512F.FusedMultiplyAdd(k3, x, a13);
                x = Vector512.Create(r2[c]);
                a20 = Avx512F.FusedMultiplyAdd(k0, x, a20); a21 = Avx512F.FusedMultiplyAdd(k1, x, a21); a22 = Avx512F.FusedMultiplyAdd(k2, x, a22); a23 = Avx512F.FusedMultiplyAdd(k3, x, a23);
                x = Vector512.Create(r3[c]);
                a30 = Avx512F.FusedMultiplyAdd(k0, x, a30); a31 = Avx512F.FusedMultiplyAdd(k1, x, a31); a32 = Avx512F.FusedMultiplyAdd(k2, x, a32); a33 = Avx512F.FusedMultiplyAdd(k3, x, a33);
            }
            float* o = output + j * Lanes;
            a00.Store(o); a01.Store(o + 16); a02.Store(o + 32); a03.Store(o + 48); o += padded;
            a10.Store(o); a11.Store(o + 16); a12.Store(o + 32); a13.Store(o + 48); o += padded;
            a20.Store(o); a21.Store(o + 16); a22.Store(o + 32); a23.Store(o + 48); o += padded;
            a30.Store(o); a31.Store(o + 16); a32.Store(o + 32); a33.Store(o + 48);
        }
        for (; j < blocks; j++)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            float* col = keysT + j * Lanes;
            for (int c = 0; c < depth; c++, col += padded)
            {
                var key = Vector512.Load(col);
                a0 = Avx512F.FusedMultiplyAdd(key, Vector512.Create(r0[c]), a0);
                a1 = Avx512F.FusedMultiplyAdd(key, Vector512.Create(r1[c]), a1);
                a2 = Avx512F.FusedMultiplyAdd(key, Vector512.Create(r2[c]), a2);
                a3 = Avx512F.FusedMultiplyAdd(key, Vector512.Create(r3[c]), a3);
            }
            float* o = output + j * Lanes;
            a0.Store(o); a1.Store(o + padded); a2.Store(o + 2 * padded); a3.Store(o + 3 * padded);
        }
    }

    /// <summary>
    /// outRows[r] = Σ_{j &lt; end} weights[r, j] · values[j] for the four rows (a null row is not written): 64 columns at
    /// a time in 16 accumulators, then 16.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Weigh(float* weights, int padded, float* values, long valueStride, int end, int depth, float** outRows)
    {
        float* w0 = weights, w1 = weights + padded, w2 = weights + 2 * padded, w3 = weights + 3 * padded;
        int c = 0;
        for (; c + 64 <= depth; c += 64)
        {
            Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default,
                a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
            float* value = values + c;
            for (int j = 0; j < end; j++, value += valueStride)
            {
                var v0 = Vector512.Load(value); var v1 = Vector512.Load(value + 16); var v2 = Vector512.Load(value + 32); var v3 = Vector512.Load(value + 48);
                var x = Vector512.Create(w0[j]);
                a00 = Avx512F.FusedMultiplyAdd(v0, x, a00); a01 = Avx512F.FusedMultiplyAdd(v1, x, a01); a02 = Avx512F.FusedMultiplyAdd(v2, x, a02); a03 = Avx512F.FusedMultiplyAdd(v3, x, a03);
                x = Vector512.Create(w1[j]);
                a10 = Avx512F.FusedMultiplyAdd(v0, x, a10); a11 = Avx512F.FusedMultiplyAdd(v1, x, a11); a12 = Avx512F.FusedMultiplyAdd(v2, x, a12); a13 = Avx512F.FusedMultiplyAdd(v3, x, a13);
                x = Vector512.Create(w2[j]);
                a20 = Avx512F.FusedMultiplyAdd(v0, x, a20); a21 = Avx512F.FusedMultiplyAdd(v1, x, a21); a22 = Avx512F.FusedMultiplyAdd(v2, x, a22); a23 = Avx512F.FusedMultiplyAdd(v3, x, a23);
                x = Vector512.Create(w3[j]);
                a30 = Avx512F.FusedMultiplyAdd(v0, x, a30); a31 = Avx512F.FusedMultiplyAdd(v1, x, a31); a32 = Avx512F.FusedMultiplyAdd(v2, x, a32); a33 = Avx512F.FusedMultiplyAdd(v3, x, a33);
            }
            Store(outRows[0], c, a00, a01, a02, a03);
            Store(outRows[1], c, a10, a11, a12, a13);
            Store(outRows[2], c, a20, a21, a22, a23);
            Store(outRows[3], c, a30, a31, a32, a33);
        }
        for (; c < depth; c += Lanes)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            float* value = values + c;
            for (int j = 0; j < end; j++, value += valueStride)
            {
                var v0 = Vector512.Load(value);
                a0 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(w0[j]), a0);
                a1 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(w1[j]), a1);
                a2 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(w2[j]), a2);
                a3 = Avx512F.FusedMultiplyAdd(v0, Vector512.Create(w3[j]), a3);
            }
            if (outRows[0] != null) a0.Store(outRows[0] + c);
            if (outRows[1] != null) a1.Store(outRows[1] + c);
            if (outRows[2] != null) a2.Store(outRows[2] + c);
            if (outRows[3] != null) a3.Store(outRows[3] + c);
        }
    }

    private static unsafe void Store(float* row, int c, Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3)
    {
        if (row == null) return;
        a0.Store(row + c); a1.Store(row + c + 16); a2.Store(row + c + 32); a3.Store(row + c + 48);
    }

    /// <summary>
    /// target[j] += Σ_r weights[r, j] · rows[r] for keys j &lt; end (a rank-4 update of a [T, D] gradient): 64 columns
    /// of the four rows held in registers while the keys stream past.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Accumulate(float* weights, int padded, float** rows, int end, int depth, float* target)
    {
        float* w0 = weights, w1 = weights + padded, w2 = weights + 2 * padded, w3 = weights + 3 * padded;
        int c = 0;
        for (; c + 64 <= depth; c += 64)
        {
            var x00 = Vector512.Load(rows[0] + c); var x01 = Vector512.Load(rows[0] + c + 16); var x02 = Vector512.Load(rows[0] + c + 32); var x03 = Vector512.Load(rows[0] + c + 48);
            var x10 = Vector512.Load(rows[1] + c); var x11 = Vector512.Load(rows[1] + c + 16); var x12 = Vector512.Load(rows[1] + c + 32); var x13 = Vector512.Load(rows[1] + c + 48);
            var x20 = Vector512.Load(rows[2] + c); var x21 = Vector512.Load(rows[2] + c + 16); var x22 = Vector512.Load(rows[2] + c + 32); var x23 = Vector512.Load(rows[2] + c + 48);
            var x30 = Vector512.Load(rows[3] + c); var x31 = Vector512.Load(rows[3] + c + 16); var x32 = Vector512.Load(rows[3] + c + 32); var x33 = Vector512.Load(rows[3] + c + 48);
            float* t = target + c;
            for (int j = 0; j < end; j++, t += depth)
            {
                var y0 = Vector512.Load(t); var y1 = Vector512.Load(t + 16); var y2 = Vector512.Load(t + 32); var y3 = Vector512.Load(t + 48);
                var w = Vector512.Create(w0[j]);
                y0 = Avx512F.FusedMultiplyAdd(x00, w, y0); y1 = Avx512F.FusedMultiplyAdd(x01, w, y1); y2 = Avx512F.FusedMultiplyAdd(x02, w, y2); y3 = Avx512F.FusedMultiplyAdd(x03, w, y3);
                w = Vector512.Create(w1[j]);
                y0 = Avx512F.FusedMultiplyAdd(x10, w, y0); y1 = Avx512F.FusedMultiplyAdd(x11, w, y1); y2 = Avx512F.FusedMultiplyAdd(x12, w, y2); y3 = Avx512F.FusedMultiplyAdd(x13, w, y3);
                w = Vector512.Create(w2[j]);
                y0 = Avx512F.FusedMultiplyAdd(x20, w, y0); y1 = Avx512F.FusedMultiplyAdd(x21, w, y1); y2 = Avx512F.FusedMultiplyAdd(x22, w, y2); y3 = Avx512F.FusedMultiplyAdd(x23, w, y3);
                w = Vector512.Create(w3[j]);
                y0 = Avx512F.FusedMultiplyAdd(x30, w, y0); y1 = Avx512F.FusedMultiplyAdd(x31, w, y1); y2 = Avx512F.FusedMultiplyAdd(x32, w, y2); y3 = Avx512F.FusedMultiplyAdd(x33, w, y3);
                y0.Store(t); y1.Store(t + 16); y2.Store(t + 32); y3.Store(t + 48);
            }
        }
        for (; c < depth; c += Lanes)
        {
            var x0 = Vector512.Load(rows[0] + c); var x1 = Vector512.Load(rows[1] + c); var x2 = Vector512.Load(rows[2] + c); var x3 = Vector512.Load(rows[3] + c);
            float* t = target + c;
            for (int j = 0; j < end; j++, t += depth)
            {
                var y = Vector512.Load(t);
                y = Avx512F.FusedMultiplyAdd(x0, Vector512.Create(w0[j]), y);
                y = Avx512F.FusedMultiplyAdd(x1, Vector512.Create(w1[j]), y);
                y = Avx512F.FusedMultiplyAdd(x2, Vector512.Create(w2[j]), y);
                y = Avx512F.FusedMultiplyAdd(x3, Vector512.Create(w3[j]), y);
                y.Store(t);
            }
        }
    }
}
