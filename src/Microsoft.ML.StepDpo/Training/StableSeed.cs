namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// Derives a seed from several integers, the same in every process. (<see cref="HashCode.Combine{T1, T2}"/> is
/// randomized per process, so a seed made with it shuffles differently after a restart and a resumed run would
/// not see the data in the uninterrupted run's order.)
/// </summary>
internal static class StableSeed
{
    public static int Mix(params int[] values)
    {
        ulong h = 0x9E3779B97F4A7C15UL;
        foreach (var v in values)
        {
            h ^= (uint)v;
            // SplitMix64 finalizer.
            h += 0x9E3779B97F4A7C15UL;
            h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9UL;
            h = (h ^ (h >> 27)) * 0x94D049BB133111EBUL;
            h ^= h >> 31;
        }
        return (int)(h ^ (h >> 32));
    }
}
