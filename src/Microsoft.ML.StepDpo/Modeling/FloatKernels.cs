using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// The element-wise float loops of <see cref="FusedDecoder"/> and <see cref="SlotAttention"/>, 16 lanes at a time with
/// a scalar tail. They are compiled fully optimized at their first call: under tiered compilation a loop of vector
/// intrinsics first runs as unoptimized code, many times slower, and a batch job keeps meeting new code long enough
/// to delay the optimized version by seconds (measured in the demo's stage b: docs/benchmarks.md "Sampling").
/// Each result depends on its own row's values and length only. Callers check <see cref="Avx512F.IsSupported"/>.
/// </summary>
internal static unsafe class FloatKernels
{
    /// <summary>x[i] += y[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddInPlace(float* x, float* y, long n)
    {
        long i = 0;
        for (; i + 16 <= n; i += 16) (Vector512.Load(x + i) + Vector512.Load(y + i)).Store(x + i);
        for (; i < n; i++) x[i] += y[i];
    }

    /// <summary>result[i] = silu(gate[i]) · up[i], silu as libtorch spells it: g / (1 + exp(-g)).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SiluTimes(float* gate, float* up, float* result, int n)
    {
        int i = 0;
        var one = Vector512.Create(1f);
        for (; i + 16 <= n; i += 16)
        {
            var g = Vector512.Load(gate + i);
            (g / (one + Exp(-g)) * Vector512.Load(up + i)).Store(result + i);
        }
        for (; i < n; i++) result[i] = gate[i] / (1f + MathF.Exp(-gate[i])) * up[i];
    }

    /// <summary>y = softmax(x) over n values: exp(x - max) / Σ exp(x - max). y may be x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SoftMax(float* x, float* y, int n)
    {
        int i = 0;
        var maxima = Vector512.Create(float.NegativeInfinity);
        for (; i + 16 <= n; i += 16) maxima = Vector512.Max(maxima, Vector512.Load(x + i));
        float max = HorizontalMax(maxima);
        for (; i < n; i++) max = MathF.Max(max, x[i]);

        var sums = Vector512<float>.Zero;
        var top = Vector512.Create(max);
        i = 0;
        for (; i + 16 <= n; i += 16)
        {
            var e = Exp(Vector512.Load(x + i) - top);
            e.Store(y + i);
            sums += e;
        }
        float sum = Vector512.Sum(sums);
        for (; i < n; i++)
        {
            y[i] = MathF.Exp(x[i] - max);
            sum += y[i];
        }
        var scale = Vector512.Create(1f / sum);
        i = 0;
        for (; i + 16 <= n; i += 16) (Vector512.Load(y + i) * scale).Store(y + i);
        float s = 1f / sum;
        for (; i < n; i++) y[i] *= s;
    }

    /// <summary>
    /// y = w · (x · 1/√(mean(x²) + eps)) over n values, as <see cref="RmsNorm"/> computes it in float32 (its mean
    /// summed in another order). y may be x.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RmsNorm(float* x, float* y, int n, float* w, float eps)
    {
        int i = 0;
        var squares = Vector512<float>.Zero;
        for (; i + 16 <= n; i += 16)
        {
            var v = Vector512.Load(x + i);
            squares += v * v;
        }
        float sum = Vector512.Sum(squares);
        for (; i < n; i++) sum += x[i] * x[i];
        float scale = 1f / MathF.Sqrt(sum / n + eps);
        var s = Vector512.Create(scale);
        i = 0;
        for (; i + 16 <= n; i += 16) (Vector512.Load(w + i) * (Vector512.Load(x + i) * s)).Store(y + i);
        for (; i < n; i++) y[i] = w[i] * (x[i] * scale);
    }

    /// <summary>
    /// e^x in 16 lanes to about one unit in the last place: x = n·ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 in two parts, so
    /// that r is exact), e^r by the Cephes single-precision polynomial, times 2^n built in the exponent bits; 0 below
    /// the smallest normal result, +∞ above the largest.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static Vector512<float> Exp(Vector512<float> x)
    {
        var tooSmall = Vector512.LessThan(x, Vector512.Create(-87.33654f));
        var tooLarge = Vector512.GreaterThan(x, Vector512.Create(88.72284f));
        var clamped = Vector512.Min(Vector512.Max(x, Vector512.Create(-87.33654f)), Vector512.Create(88.72284f));
        var n = Vector512.Floor(Avx512F.FusedMultiplyAdd(clamped, Vector512.Create(1.44269504088896341f), Vector512.Create(0.5f)));
        var r = Avx512F.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), clamped);
        r = Avx512F.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1.9875691500e-4f);
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1.3981999507e-3f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073e-3f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894e-2f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459e-1f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201e-1f));
        p = Avx512F.FusedMultiplyAdd(p, r * r, r + Vector512.Create(1f));
        var scale = Vector512.ShiftLeft(Vector512.ConvertToInt32(n) + Vector512.Create(127), 23).AsSingle();
        var e = p * scale;
        e = Vector512.ConditionalSelect(tooSmall.AsSingle(), Vector512<float>.Zero, e);
        return Vector512.ConditionalSelect(tooLarge.AsSingle(), Vector512.Create(float.PositiveInfinity), e);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float HorizontalMax(Vector512<float> v)
    {
        float max = float.NegativeInfinity;
        for (int i = 0; i < Vector512<float>.Count; i++) max = MathF.Max(max, v.GetElement(i));
        return max;
    }
}
