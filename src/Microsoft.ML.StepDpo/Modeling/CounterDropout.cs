using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Inverted dropout, <c>x · m / (1 − p)</c> with <c>m ~ Bernoulli(1 − p)</c> per element, as
/// <c>torch.nn.functional.dropout</c> computes it (noise = bernoulli(1 − p) / (1 − p) in the input's dtype, then
/// input · noise), with the Bernoulli draws taken from a SplitMix64 stream instead of libtorch's generator.
/// </summary>
/// <remarks>
/// Why: libtorch fills a CPU Bernoulli mask one element at a time on one thread (its vectorized MKL path is taken on
/// Intel CPUs only), which was a quarter of a 0.5B LoRA training step on this machine's AMD CPU (7 adapted projections
/// × 24 layers ≈ 250 thousand draws per token). SplitMix64's output n is <c>Next(key + n·γ)</c>, so any element's draw
/// is computed from its index alone: a tight loop, the same bits whatever the chunking. The key is one draw from
/// torch's default generator, so <c>torch.manual_seed</c> reproduces the masks and restoring the generator's state
/// (gradient checkpointing's recompute) repeats them. Element 2j takes the low 32 bits of output j, element 2j + 1
/// the high 32 bits; an element is dropped when its 32 bits are below round(p · 2³²). Other devices (CUDA's dropout
/// is fused and fast; meta has no data) use libtorch's dropout.
/// </remarks>
internal static class CounterDropout
{
    private static readonly ConcurrentDictionary<(ScalarType, double), ulong> s_scaleBits = new();

    /// <summary>Dropout of <paramref name="x"/> with drop probability <paramref name="p"/> when <paramref name="training"/>.</summary>
    public static Tensor Apply(Tensor x, double p, bool training)
    {
        if (!training || p == 0) return x;
        if (p is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(p), "Dropout probability must be in [0, 1).");
        // A tensor's bytes are read as one span (at most 2 GB); larger inputs, other devices and dtypes take libtorch's dropout.
        if (x.device_type != DeviceType.CPU || !Supported(x.dtype) || x.numel() * x.ElementSize > int.MaxValue) return nn.functional.dropout(x, p, true);
        return x * Noise(x.shape, p, x.dtype, DrawKey());
    }

    /// <summary>The noise tensor, each element 0 or 1/(1 − p) in <paramref name="dtype"/> (as torch rounds it), for stream <paramref name="key"/>.</summary>
    internal static Tensor Noise(long[] shape, double p, ScalarType dtype, ulong key)
    {
        var noise = torch.empty(shape, dtype);
        uint threshold = DropThreshold(p);
        ulong scale = ScaleBits(dtype, p);
        var bytes = noise.bytes;
        switch (dtype)
        {
            case ScalarType.BFloat16:
            case ScalarType.Float16:
                Fill(MemoryMarshal.Cast<byte, ushort>(bytes), key, threshold, (ushort)scale);
                break;
            case ScalarType.Float32:
                Fill(MemoryMarshal.Cast<byte, uint>(bytes), key, threshold, (uint)scale);
                break;
            default:
                Fill(MemoryMarshal.Cast<byte, ulong>(bytes), key, threshold, scale);
                break;
        }
        return noise;
    }

    /// <summary>Elements whose 32 bits are below this are dropped: round(p · 2³²).</summary>
    internal static uint DropThreshold(double p) => (uint)Math.Min(uint.MaxValue, Math.Round(p * 4294967296.0));

    /// <summary>SplitMix64's output at counter <paramref name="n"/> of stream <paramref name="key"/>.</summary>
    internal static ulong Draw(ulong key, ulong n) => SplitMix64.Next(key + n * SplitMix64.Gamma);

    /// <summary>Writes <paramref name="scale"/> or 0 per element; whole 64-bit outputs 8 at a time where the CPU has AVX-512.</summary>
    internal static void Fill<T>(Span<T> noise, ulong key, uint threshold, T scale, bool vectorized = true) where T : unmanaged
    {
        int n = noise.Length, done = 0;
        if (vectorized && Vector512.IsHardwareAccelerated)
            done = Unsafe.SizeOf<T>() switch
            {
                2 => FillWide16(MemoryMarshal.Cast<T, ushort>(noise), key, threshold, Unsafe.As<T, ushort>(ref scale)),
                4 => FillWide32(MemoryMarshal.Cast<T, uint>(noise), key, threshold, Unsafe.As<T, uint>(ref scale)),
                _ => 0,
            };
        T zero = default;
        for (int i = done; i < n; i += 2)
        {
            ulong z = Draw(key, (ulong)(i / 2));
            noise[i] = (uint)z < threshold ? zero : scale;
            if (i + 1 < n) noise[i + 1] = (uint)(z >> 32) < threshold ? zero : scale;
        }
    }

    // Eight counters per vector: lanes hold key + (j + 1 + l)·γ. Read as 16 uints, a vector of outputs is already in
    // element order (low half of output j = element 2j), so a compare gives the keep mask of 16 elements.
    private static Vector512<ulong> Counters(ulong key) =>
        Vector512.Create(key) + Vector512.Create(1UL, 2, 3, 4, 5, 6, 7, 8) * Vector512.Create(SplitMix64.Gamma);

    private static Vector512<uint> Mix(Vector512<ulong> z)
    {
        z = (z ^ Vector512.ShiftRightLogical(z, 30)) * Vector512.Create(SplitMix64.Multiplier1);
        z = (z ^ Vector512.ShiftRightLogical(z, 27)) * Vector512.Create(SplitMix64.Multiplier2);
        return (z ^ Vector512.ShiftRightLogical(z, 31)).AsUInt32();
    }

    private static int FillWide32(Span<uint> noise, ulong key, uint threshold, uint scale)
    {
        var counters = Counters(key);
        var step = Vector512.Create(unchecked(8 * SplitMix64.Gamma));
        var t = Vector512.Create(threshold);
        var s = Vector512.Create(scale);
        int i = 0;
        for (; i + 16 <= noise.Length; i += 16, counters += step)
            (Vector512.GreaterThanOrEqual(Mix(counters), t) & s).CopyTo(noise[i..]);
        return i;
    }

    private static int FillWide16(Span<ushort> noise, ulong key, uint threshold, ushort scale)
    {
        var counters = Counters(key);
        var step = Vector512.Create(unchecked(8 * SplitMix64.Gamma));
        var t = Vector512.Create(threshold);
        var s = Vector512.Create(scale);
        int i = 0;
        for (; i + 32 <= noise.Length; i += 32)
        {
            var low = Vector512.GreaterThanOrEqual(Mix(counters), t);
            counters += step;
            var high = Vector512.GreaterThanOrEqual(Mix(counters), t);
            counters += step;
            (Vector512.Narrow(low, high) & s).CopyTo(noise[i..]);
        }
        return i;
    }

    /// <summary>One draw in [0, 2⁶³ − 1) from torch's default CPU generator.</summary>
    internal static ulong DrawKey()
    {
        using var k = torch.randint(0, long.MaxValue, new long[] { 1 }, ScalarType.Int64);
        return (ulong)k.item<long>();
    }

    /// <summary>The bits of 1/(1 − p) in <paramref name="dtype"/>, computed the way torch's dropout divides its noise.</summary>
    private static ulong ScaleBits(ScalarType dtype, double p) => s_scaleBits.GetOrAdd((dtype, p), key =>
    {
        using var scope = torch.NewDisposeScope();
        var one = torch.ones(1, key.Item1).div_(Num(1 - key.Item2));
        var b = one.bytes;
        return b.Length switch
        {
            2 => MemoryMarshal.Read<ushort>(b),
            4 => MemoryMarshal.Read<uint>(b),
            _ => MemoryMarshal.Read<ulong>(b),
        };
    });

    private static bool Supported(ScalarType t) => t is ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float32 or ScalarType.Float64;
}
