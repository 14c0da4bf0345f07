namespace Microsoft.ML.StepDpo.Sampling;

/// <summary>A request for continuations of a partial solution.</summary>
/// <param name="Problem">The problem text.</param>
/// <param name="Prefix">The reasoning so far, e.g. "Let's think step by step.\nStep 1: 6*9=54.\nStep 2:"; empty to start from scratch.</param>
/// <param name="Count">How many continuations to sample (at least 1).</param>
/// <param name="Settings">How to sample.</param>
public sealed record CompletionRequest(string Problem, string Prefix, int Count, SamplingSettings Settings)
{
    internal void Validate()
    {
        if (Problem is null) throw new ArgumentNullException(nameof(Problem));
        if (Prefix is null) throw new ArgumentNullException(nameof(Prefix));
        if (Count < 1) throw new ArgumentOutOfRangeException(nameof(Count), Count, "At least one continuation must be requested.");
        if (Settings is null) throw new ArgumentNullException(nameof(Settings));
        Settings.Validate();
    }
}
