namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// SplitMix64 (Steele, Lea &amp; Flood 2014): state advances by the golden-ratio increment γ and each output is the
/// state through a 64-bit finalizer (a bijection with full avalanche). Output n of the stream seeded with k is
/// <c>Next(k + n·γ)</c>, so any draw is computed from its index alone: the counter-based random numbers of sampling
/// (<see cref="RowRandom"/>) and of dropout masks (<see cref="CounterDropout"/>) are built on it.
/// </summary>
internal static class SplitMix64
{
    public const ulong Gamma = 0x9E3779B97F4A7C15UL;
    public const ulong Multiplier1 = 0xBF58476D1CE4E5B9UL;
    public const ulong Multiplier2 = 0x94D049BB133111EBUL;

    /// <summary>The output that follows state <paramref name="state"/>: (state + γ) through the finalizer.</summary>
    public static ulong Next(ulong state)
    {
        ulong z = state + Gamma;
        z = (z ^ (z >> 30)) * Multiplier1;
        z = (z ^ (z >> 27)) * Multiplier2;
        return z ^ (z >> 31);
    }
}
