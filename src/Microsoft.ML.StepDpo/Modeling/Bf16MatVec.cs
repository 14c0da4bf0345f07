using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// y[m,n] = Σ_k x[m,k]·W[n,k] (+ b[n]) for a bf16 weight W [N,K] read in place, a few fp32 input rows and
/// fp32 accumulation, rounded once to bf16 (round to nearest even), as torch's bf16 <c>addmm</c> does.
/// A bf16 value is the top half of an fp32, so widening is a 16-bit shift: for a pair of weights read as
/// one 32-bit word, <c>word &lt;&lt; 16</c> is the even weight and <c>word &amp; 0xFFFF0000</c> the odd one.
/// The input is therefore pre-arranged per block of 16 (see <see cref="Arrange"/>): its 8 even-indexed
/// values, then its 8 odd-indexed ones.
/// </summary>
internal static class Bf16MatVec
{
    // The loops are compiled fully optimized on first call (AggressiveOptimization): decoding calls them a few
    // hundred times per token, and tier-0 code during the first tokens would be an order of magnitude slower.

    /// <summary>Elements per block of the arranged input (one 256-bit load of bf16 weights).</summary>
    public const int Block = 16;

    /// <summary>
    /// Vector width the loops use: 256 (AVX2 and the like), 128 (e.g. Arm NEON) or 0 (scalar); the widest the
    /// hardware accelerates. Settable so tests can run every path on one machine.
    /// </summary>
    internal static int Width { get; set; } = Vector256.IsHardwareAccelerated ? 256 : Vector128.IsHardwareAccelerated ? 128 : 0;

    /// <summary>
    /// Writes input rows x [M,K] (bf16 bits, row-major) as fp32 into <paramref name="arranged"/> [M,K]:
    /// every full block of 16 becomes its even-indexed then its odd-indexed values; the tail stays in order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Arrange(ReadOnlySpan<ushort> x, int rows, int k, Span<float> arranged)
    {
        int full = k / Block * Block;
        for (int m = 0; m < rows; m++)
        {
            var src = x.Slice(m * k, k);
            var dst = arranged.Slice(m * k, k);
            for (int b = 0; b < full; b += Block)
                for (int j = 0; j < Block / 2; j++)
                {
                    dst[b + j] = ToFloat(src[b + 2 * j]);
                    dst[b + Block / 2 + j] = ToFloat(src[b + 2 * j + 1]);
                }
            for (int i = full; i < k; i++) dst[i] = ToFloat(src[i]);
        }
    }

    /// <summary>
    /// Output columns [n0, n1) of y [M,N] (bf16 bits) for weight W [N,K] (bf16 bits), arranged input [M,K]
    /// and an optional fp32 bias [N] (empty for none).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(ReadOnlySpan<ushort> w, int k, ReadOnlySpan<float> x, int rows, ReadOnlySpan<float> bias, Span<ushort> y, int n, int n0, int n1)
    {
        Span<float> sums = stackalloc float[4];
        for (int o = n0; o < n1; o++)
        {
            var wRow = w.Slice(o * k, k);
            float b = bias.IsEmpty ? 0f : bias[o];
            int m = 0;
            for (; m + 4 <= rows; m += 4)
            {
                Dot4(wRow, x.Slice(m * k, 4 * k), k, sums);
                for (int i = 0; i < 4; i++) y[(m + i) * n + o] = ToBf16(sums[i] + b);
            }
            for (; m + 2 <= rows; m += 2)
            {
                Dot2(wRow, x.Slice(m * k, 2 * k), k, sums);
                y[m * n + o] = ToBf16(sums[0] + b);
                y[(m + 1) * n + o] = ToBf16(sums[1] + b);
            }
            if (m < rows) y[m * n + o] = ToBf16(Dot1(wRow, x.Slice(m * k, k), k) + b);
        }
    }

    /// <summary>bf16 bits to fp32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>fp32 to bf16 bits, round to nearest even; NaN becomes the quiet NaN 0x7FC0 (c10::BFloat16's rule).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ToBf16(float value)
    {
        if (float.IsNaN(value)) return 0x7FC0;
        uint u = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    }

    private static readonly Vector256<uint> HighHalf = Vector256.Create(0xFFFF0000u);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Fma256(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Fma.IsSupported ? Fma.MultiplyAdd(a, b, c) : c + a * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Fma128(Vector128<float> a, Vector128<float> b, Vector128<float> c) =>
        Fma.IsSupported ? Fma.MultiplyAdd(a, b, c) : c + a * b;

    // The 16 weights at w[i..i+16) as (even, odd) fp32 vectors.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> Even, Vector256<float> Odd) Load16(ref ushort w, int i)
    {
        var words = Vector256.LoadUnsafe(ref Unsafe.As<ushort, uint>(ref Unsafe.Add(ref w, i)));
        return (Vector256.ShiftLeft(words, 16).AsSingle(), (words & HighHalf).AsSingle());
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot1(ReadOnlySpan<ushort> wRow, ReadOnlySpan<float> x, int k)
    {
        ref ushort w = ref MemoryMarshal.GetReference(wRow);
        ref float xr = ref MemoryMarshal.GetReference(x);
        int i = 0;
        float sum;
        int width = Width;
        if (width == 256 && k >= 2 * Block)
        {
            sum = Dot1Wide(wRow, x, k, out i);
        }
        else if (width == 128 && k >= Block)
        {
            // Same arrangement, read as two 128-bit halves: words 0..3 pair with even[0..3] / odd[0..3], words 4..7 with [4..7].
            var high = Vector128.Create(0xFFFF0000u);
            Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + Block <= k; i += Block)
            {
                var lo = Vector128.LoadUnsafe(ref Unsafe.As<ushort, uint>(ref Unsafe.Add(ref w, i)));
                var hi = Vector128.LoadUnsafe(ref Unsafe.As<ushort, uint>(ref Unsafe.Add(ref w, i + 8)));
                a0 = Fma128(Vector128.ShiftLeft(lo, 16).AsSingle(), Vector128.LoadUnsafe(ref xr, (nuint)i), a0);
                a1 = Fma128((lo & high).AsSingle(), Vector128.LoadUnsafe(ref xr, (nuint)(i + 8)), a1);
                a2 = Fma128(Vector128.ShiftLeft(hi, 16).AsSingle(), Vector128.LoadUnsafe(ref xr, (nuint)(i + 4)), a2);
                a3 = Fma128((hi & high).AsSingle(), Vector128.LoadUnsafe(ref xr, (nuint)(i + 12)), a3);
            }
            sum = Vector128.Sum((a0 + a1) + (a2 + a3));
        }
        else
        {
            sum = 0;
            for (; i + Block <= k; i += Block)
                for (int j = 0; j < Block / 2; j++)
                    sum += ToFloat(wRow[i + 2 * j]) * x[i + j] + ToFloat(wRow[i + 2 * j + 1]) * x[i + Block / 2 + j];
        }
        for (; i < k; i++) sum += ToFloat(wRow[i]) * x[i];
        return sum;
    }

    /// <summary>Bytes ahead of the current weight read to prefetch (tuned on the 2-core EPYC: 512–2048 all help; 1024 best).</summary>
    private const int PrefetchDistance = 1024;

    // The 256-bit single-row loop, 32 weights (one cache line) per iteration, returning the sum of the
    // full blocks and the index where the scalar tail starts. A one-row product is bound by how fast one
    // core can pull a weight stream from memory; a non-temporal prefetch a kilobyte ahead keeps more lines
    // in flight than the hardware prefetcher alone and does not evict the activations from cache.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Dot1Wide(ReadOnlySpan<ushort> wRow, ReadOnlySpan<float> x, int k, out int end)
    {
        ref ushort w = ref MemoryMarshal.GetReference(wRow);
        ref float xr = ref MemoryMarshal.GetReference(x);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        fixed (ushort* wp = wRow)
        {
            // Prefetch addresses past the end of the row are harmless: prefetches never fault.
            byte* ahead = (byte*)wp + PrefetchDistance;
            bool prefetch = Sse.IsSupported;
            for (; i + 2 * Block <= k; i += 2 * Block)
            {
                if (prefetch) Sse.PrefetchNonTemporal(ahead + 2 * i);
                var (e0, o0) = Load16(ref w, i);
                var (e1, o1) = Load16(ref w, i + Block);
                a0 = Fma256(e0, Vector256.LoadUnsafe(ref xr, (nuint)i), a0);
                a1 = Fma256(o0, Vector256.LoadUnsafe(ref xr, (nuint)(i + 8)), a1);
                a2 = Fma256(e1, Vector256.LoadUnsafe(ref xr, (nuint)(i + Block)), a2);
                a3 = Fma256(o1, Vector256.LoadUnsafe(ref xr, (nuint)(i + Block + 8)), a3);
            }
        }
        for (; i + Block <= k; i += Block)
        {
            var (e0, o0) = Load16(ref w, i);
            a0 = Fma256(e0, Vector256.LoadUnsafe(ref xr, (nuint)i), a0);
            a1 = Fma256(o0, Vector256.LoadUnsafe(ref xr, (nuint)(i + 8)), a1);
        }
        end = i;
        return Vector256.Sum((a0 + a1) + (a2 + a3));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot2(ReadOnlySpan<ushort> wRow, ReadOnlySpan<float> x, int k, Span<float> sums)
    {
        if (Width != 256 || k < Block)
        {
            sums[0] = Dot1(wRow, x.Slice(0, k), k);
            sums[1] = Dot1(wRow, x.Slice(k, k), k);
            return;
        }
        ref ushort w = ref MemoryMarshal.GetReference(wRow);
        ref float x0 = ref MemoryMarshal.GetReference(x);
        ref float x1 = ref Unsafe.Add(ref x0, k);
        Vector256<float> a0 = default, a1 = default, b0 = default, b1 = default;
        int i = 0;
        for (; i + Block <= k; i += Block)
        {
            var (e, o) = Load16(ref w, i);
            a0 = Fma256(e, Vector256.LoadUnsafe(ref x0, (nuint)i), a0);
            a1 = Fma256(o, Vector256.LoadUnsafe(ref x0, (nuint)(i + 8)), a1);
            b0 = Fma256(e, Vector256.LoadUnsafe(ref x1, (nuint)i), b0);
            b1 = Fma256(o, Vector256.LoadUnsafe(ref x1, (nuint)(i + 8)), b1);
        }
        float s0 = Vector256.Sum(a0 + a1), s1 = Vector256.Sum(b0 + b1);
        for (; i < k; i++)
        {
            float wi = ToFloat(wRow[i]);
            s0 += wi * x[i];
            s1 += wi * x[k + i];
        }
        sums[0] = s0; sums[1] = s1;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4(ReadOnlySpan<ushort> wRow, ReadOnlySpan<float> x, int k, Span<float> sums)
    {
        if (Width != 256 || k < Block)
        {
            Dot2(wRow, x.Slice(0, 2 * k), k, sums);
            Dot2(wRow, x.Slice(2 * k, 2 * k), k, sums.Slice(2));
            return;
        }
        ref ushort w = ref MemoryMarshal.GetReference(wRow);
        ref float x0 = ref MemoryMarshal.GetReference(x);
        ref float x1 = ref Unsafe.Add(ref x0, k);
        ref float x2 = ref Unsafe.Add(ref x0, 2 * k);
        ref float x3 = ref Unsafe.Add(ref x0, 3 * k);
        Vector256<float> a0 = default, a1 = default, b0 = default, b1 = default, c0 = default, c1 = default, d0 = default, d1 = default;
        int i = 0;
        for (; i + Block <= k; i += Block)
        {
            var (e, o) = Load16(ref w, i);
            a0 = Fma256(e, Vector256.LoadUnsafe(ref x0, (nuint)i), a0);
            a1 = Fma256(o, Vector256.LoadUnsafe(ref x0, (nuint)(i + 8)), a1);
            b0 = Fma256(e, Vector256.LoadUnsafe(ref x1, (nuint)i), b0);
            b1 = Fma256(o, Vector256.LoadUnsafe(ref x1, (nuint)(i + 8)), b1);
            c0 = Fma256(e, Vector256.LoadUnsafe(ref x2, (nuint)i), c0);
            c1 = Fma256(o, Vector256.LoadUnsafe(ref x2, (nuint)(i + 8)), c1);
            d0 = Fma256(e, Vector256.LoadUnsafe(ref x3, (nuint)i), d0);
            d1 = Fma256(o, Vector256.LoadUnsafe(ref x3, (nuint)(i + 8)), d1);
        }
        float s0 = Vector256.Sum(a0 + a1), s1 = Vector256.Sum(b0 + b1), s2 = Vector256.Sum(c0 + c1), s3 = Vector256.Sum(d0 + d1);
        for (; i < k; i++)
        {
            float wi = ToFloat(wRow[i]);
            s0 += wi * x[i];
            s1 += wi * x[k + i];
            s2 += wi * x[2 * k + i];
            s3 += wi * x[3 * k + i];
        }
        sums[0] = s0; sums[1] = s1; sums[2] = s2; sums[3] = s3;
    }
}
