using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

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

    // TorchSharp's + (and add without an alpha) passes alpha = 1 to libtorch as a temporary Scalar of its own, with the
    // same race: a + b failed at random in long decoding runs ("Expected false to be true" from Scalar::toFloat). These
    // pass a kept alpha instead. (Its - calls libtorch's sub without an alpha and is safe, except number - tensor, which
    // it computes as -tensor + number.)

    /// <summary><paramref name="a"/> + <paramref name="b"/>.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, Num(1L));

    /// <summary><paramref name="a"/> + <paramref name="b"/> (a kept Scalar, <see cref="Num(double)"/>).</summary>
    public static Tensor Plus(this Tensor a, Scalar b) => a.add(b, Num(1L));

    /// <summary><paramref name="a"/> - <paramref name="b"/> for a kept Scalar <paramref name="a"/>.</summary>
    public static Tensor Minus(Scalar a, Tensor b) => b.neg().add(a, Num(1L));
}
