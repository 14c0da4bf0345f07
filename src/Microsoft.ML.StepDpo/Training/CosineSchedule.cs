namespace Microsoft.ML.StepDpo.Training;

/// <summary>Linear warmup then cosine decay to zero, as Hugging Face's get_cosine_schedule_with_warmup.</summary>
internal static class CosineSchedule
{
    /// <summary>Learning-rate multiplier at optimizer step <paramref name="step"/> (0-based).</summary>
    public static double Multiplier(int step, int totalSteps, int warmupSteps)
    {
        if (totalSteps <= 0) return 1;
        if (step < warmupSteps) return (double)step / Math.Max(1, warmupSteps);
        double progress = (double)(step - warmupSteps) / Math.Max(1, totalSteps - warmupSteps);
        return Math.Max(0, 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, progress))));
    }

    /// <summary>Warmup steps for a ratio, rounded up as Hugging Face does.</summary>
    public static int WarmupSteps(int totalSteps, double warmupRatio) => (int)Math.Ceiling(totalSteps * warmupRatio);
}
