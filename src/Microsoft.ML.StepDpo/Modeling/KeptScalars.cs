using System.Collections.Concurrent;
using TorchSharp;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Numbers for tensor operations as <see cref="Scalar"/>s that live as long as the process.
/// </summary>
/// <remarks>
/// TorchSharp 0.107 hands a Scalar's native handle to libtorch without keeping the Scalar object alive, and a Scalar
/// has a finalizer that frees the native value. A temporary Scalar — every implicit conversion of a number, including
/// those inside TorchSharp's operators such as <c>tensor * 0.5</c> or <c>1 - tensor</c> — can therefore be freed by the
/// finalizer thread while libtorch still reads it, when a garbage collection falls in that window: the operation then
/// fails at random ("Expected false to be true" from <c>Scalar::toDouble</c>) or reads a wrong number. Measured here:
/// 550 failures in 2.8 million <c>clamp_min(1.0)</c> calls with a thread forcing collections, none with a kept Scalar.
/// Scalars from <see cref="Num(double)"/> are cached and never finalized, so the library's tensor code passes numbers
/// through it (<c>Num(beta) * x</c>, <c>x.clamp_min(Num(1))</c>). The cache holds one Scalar per distinct value used:
/// constants and settings, a handful per process.
/// </remarks>
internal static class KeptScalars
{
    private static readonly ConcurrentDictionary<long, Scalar> s_doubles = new(); // keyed by the bits: -0.0 ≠ 0.0, NaN works
    private static readonly ConcurrentDictionary<long, Scalar> s_longs = new();

    /// <summary>A floating-point Scalar of <paramref name="value"/> that is never finalized.</summary>
    public static Scalar Num(double value) =>
        s_doubles.GetOrAdd(BitConverter.DoubleToInt64Bits(value), bits => BitConverter.Int64BitsToDouble(bits).ToScalar());

    /// <summary>An integer Scalar of <paramref name="value"/> that is never finalized.</summary>
    public static Scalar Num(long value) => s_longs.GetOrAdd(value, v => v.ToScalar());
}
