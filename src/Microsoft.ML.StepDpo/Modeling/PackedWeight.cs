using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// A float32 projection y = x·Wᵀ (+ b) for <see cref="FusedDecoder"/>: W [N, K] (a Linear's out × in) repacked into
/// panels of 32 output columns, each K rows of 32 contiguous floats, so that an AVX-512 kernel multiplies 8 rows of x
/// by a panel with 16 accumulators held in registers. Every output element is one fused multiply-add chain over k = 0..K-1
/// in order, whichever rows share its block and however rows are split among threads: a row's result does not depend
/// on the batch around it, bit for bit.
/// </summary>
internal sealed unsafe class PackedWeight : IDisposable
{
    public const int Panel = 32, BlockRows = 8;
    private readonly float* packed;   // [panels, K, 32], zero past column N
    private readonly float* bias;     // [N] or null

    /// <param name="w">W as N rows of K floats.</param>
    /// <param name="n">Output columns (W's rows).</param>
    /// <param name="k">Input features (W's columns).</param>
    /// <param name="b">The bias (N floats), or null.</param>
    public PackedWeight(ReadOnlySpan<float> w, int n, int k, ReadOnlySpan<float> b = default)
    {
        if (n < 1 || k < 1 || w.Length != (long)n * k) throw new ArgumentException($"W must hold {n} × {k} floats.");
        if (!b.IsEmpty && b.Length != n) throw new ArgumentException($"The bias must hold {n} floats.");
        N = n;
        K = k;
        Panels = (n + Panel - 1) / Panel;
        long size = (long)Panels * k * Panel;
        packed = (float*)NativeMemory.AlignedAlloc((nuint)(size * sizeof(float)), 64);
        new Span<float>(packed, checked((int)size)).Clear();
        for (int j = 0; j < n; j++)
        {
            float* column = packed + (long)(j / Panel) * k * Panel + j % Panel;
            var row = w.Slice(j * k, k);
            for (int kk = 0; kk < k; kk++) column[(long)kk * Panel] = row[kk];
        }
        if (!b.IsEmpty)
        {
            bias = (float*)NativeMemory.AlignedAlloc((nuint)(n * sizeof(float)), 64);
            b.CopyTo(new Span<float>(bias, n));
        }
    }

    /// <summary>Output columns.</summary>
    public int N { get; }

    /// <summary>Input features.</summary>
    public int K { get; }

    private int Panels { get; }

    /// <summary>Whether the CPU runs the kernel (AVX-512F).</summary>
    public static bool Supported => Avx512F.IsSupported;

    /// <summary>
    /// y[i, 0..N) = x[i, 0..K)·Wᵀ (+ b) for rows i = 0..m-1 (x rows <paramref name="ldx"/> floats apart, y rows
    /// <paramref name="ldy"/>). <paramref name="scratch"/> holds at least <see cref="ScratchFloats"/> floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Multiply(float* x, int m, int ldx, float* y, int ldy, float* scratch)
    {
        // Rows past the last full block of 8 are copied into a zero-padded block, so that they run the same kernel.
        int full = m / BlockRows * BlockRows, tail = m - full;
        float* tailX = scratch, tailY = scratch + BlockRows * K;
        if (tail > 0)
        {
            new Span<float>(tailX, BlockRows * K).Clear();
            for (int i = 0; i < tail; i++) new ReadOnlySpan<float>(x + (long)(full + i) * ldx, K).CopyTo(new Span<float>(tailX + i * K, K));
        }
        for (int p = 0; p < Panels; p++)
        {
            float* panel = packed + (long)p * K * Panel;
            int col = p * Panel, width = Math.Min(Panel, N - col);
            for (int i = 0; i < full; i += BlockRows)
            {
                if (width == Panel) Kernel(x + (long)i * ldx, ldx, panel, K, y + (long)i * ldy + col, ldy);
                else
                {
                    Kernel(x + (long)i * ldx, ldx, panel, K, tailY, Panel);
                    for (int r = 0; r < BlockRows; r++) new ReadOnlySpan<float>(tailY + r * Panel, width).CopyTo(new Span<float>(y + (long)(i + r) * ldy + col, width));
                }
            }
            if (tail > 0)
            {
                Kernel(tailX, K, panel, K, tailY, Panel);
                for (int r = 0; r < tail; r++) new ReadOnlySpan<float>(tailY + r * Panel, width).CopyTo(new Span<float>(y + (long)(full + r) * ldy + col, width));
            }
        }
        if (bias is not null)
            for (int i = 0; i < m; i++)
            {
                float* row = y + (long)i * ldy;
                for (int j = 0; j < N; j++) row[j] += bias[j];
            }
    }

    /// <summary>x [m, K] · Wᵀ (+ b) as a new array [m, N] (the same kernel, for callers without pointers).</summary>
    public float[] Multiply(ReadOnlySpan<float> x, int m)
    {
        if (m < 0 || x.Length != (long)m * K) throw new ArgumentException($"x must hold {m} × {K} floats.", nameof(x));
        var y = new float[(long)m * N];
        var scratch = new float[ScratchFloats];
        fixed (float* xp = x, yp = y, sp = scratch) Multiply(xp, m, K, yp, N, sp);
        return y;
    }

    /// <summary>Floats of scratch <see cref="Multiply(float*, int, int, float*, int, float*)"/> needs.</summary>
    public int ScratchFloats => BlockRows * K + BlockRows * Panel;

    /// <summary>8 rows of x by one panel: y[r, 0..32) = Σ_k x[r, k] · panel[k, 0..32), each lane one FMA chain in k order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel(float* x, int ldx, float* panel, int k, float* y, int ldy)
    {
        var c00 = Vector512<float>.Zero; var c01 = Vector512<float>.Zero;
        var c10 = Vector512<float>.Zero; var c11 = Vector512<float>.Zero;
        var c20 = Vector512<float>.Zero; var c21 = Vector512<float>.Zero;
        var c30 = Vector512<float>.Zero; var c31 = Vector512<float>.Zero;
        var c40 = Vector512<float>.Zero; var c41 = Vector512<float>.Zero;
        var c50 = Vector512<float>.Zero; var c51 = Vector512<float>.Zero;
        var c60 = Vector512<float>.Zero; var c61 = Vector512<float>.Zero;
        var c70 = Vector512<float>.Zero; var c71 = Vector512<float>.Zero;
        float* x0 = x, x1 = x + ldx, x2 = x + 2 * ldx, x3 = x + 3 * ldx, x4 = x + 4 * ldx, x5 = x + 5 * ldx, x6 = x + 6 * ldx, x7 = x + 7 * ldx;
        for (int kk = 0; kk < k; kk++)
        {
            var w0 = Avx512F.LoadVector512(panel);
            var w1 = Avx512F.LoadVector512(panel + 16);
            panel += Panel;
            var a = Vector512.Create(x0[kk]); c00 = Avx512F.FusedMultiplyAdd(a, w0, c00); c01 = Avx512F.FusedMultiplyAdd(a, w1, c01);
            a = Vector512.Create(x1[kk]); c10 = Avx512F.FusedMultiplyAdd(a, w0, c10); c11 = Avx512F.FusedMultiplyAdd(a, w1, c11);
            a = Vector512.Create(x2[kk]); c20 = Avx512F.FusedMultiplyAdd(a, w0, c20); c21 = Avx512F.FusedMultiplyAdd(a, w1, c21);
            a = Vector512.Create(x3[kk]); c30 = Avx512F.FusedMultiplyAdd(a, w0, c30); c31 = Avx512F.FusedMultiplyAdd(a, w1, c31);
            a = Vector512.Create(x4[kk]); c40 = Avx512F.FusedMultiplyAdd(a, w0, c40); c41 = Avx512F.FusedMultiplyAdd(a, w1, c41);
            a = Vector512.Create(x5[kk]); c50 = Avx512F.FusedMultiplyAdd(a, w0, c50); c51 = Avx512F.FusedMultiplyAdd(a, w1, c51);
            a = Vector512.Create(x6[kk]); c60 = Avx512F.FusedMultiplyAdd(a, w0, c60); c61 = Avx512F.FusedMultiplyAdd(a, w1, c61);
            a = Vector512.Create(x7[kk]); c70 = Avx512F.FusedMultiplyAdd(a, w0, c70); c71 = Avx512F.FusedMultiplyAdd(a, w1, c71);
        }
        Avx512F.Store(y, c00); Avx512F.Store(y + 16, c01); y += ldy;
        Avx512F.Store(y, c10); Avx512F.Store(y + 16, c11); y += ldy;
        Avx512F.Store(y, c20); Avx512F.Store(y + 16, c21); y += ldy;
        Avx512F.Store(y, c30); Avx512F.Store(y + 16, c31); y += ldy;
        Avx512F.Store(y, c40); Avx512F.Store(y + 16, c41); y += ldy;
        Avx512F.Store(y, c50); Avx512F.Store(y + 16, c51); y += ldy;
        Avx512F.Store(y, c60); Avx512F.Store(y + 16, c61); y += ldy;
        Avx512F.Store(y, c70); Avx512F.Store(y + 16, c71);
    }

    private bool disposed;

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        NativeMemory.AlignedFree(packed);
        if (bias is not null) NativeMemory.AlignedFree(bias);
        GC.SuppressFinalize(this);
    }

    ~PackedWeight() => Dispose();
}
