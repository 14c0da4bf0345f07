namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Counter-based random numbers for sampling: the uniform number of (seed, row, step) is a hash of the three
/// (SplitMix64's finalizer, chained), so a sequence's draws depend on its own seed, its index within its request and
/// the token's position only — never on which other sequences share its batch, in what order, or how many draws came
/// before. That is what makes a request's samples the same alone and in any batch.
/// </summary>
internal static class RowRandom
{
    /// <summary>A uniform number in [0, 1) with 52 random bits (a multiple of 2^-52).</summary>
    public static double Uniform(long seed, long row, long step)
    {
        ulong x = SplitMix64.Next((ulong)seed);
        x = SplitMix64.Next(x ^ (ulong)row);
        x = SplitMix64.Next(x ^ (ulong)step);
        return (x >> 12) * (1.0 / (1UL << 52));
    }
}
