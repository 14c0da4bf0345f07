namespace Microsoft.ML.StepDpo.Sampling;

/// <summary>How continuations are sampled. The defaults are the Step-DPO paper's (temperature 0.8, top-p 0.95).</summary>
public sealed record SamplingSettings
{
    /// <summary>Softmax temperature; 0 is greedy. Default 0.8.</summary>
    public double Temperature { get; init; } = 0.8;

    /// <summary>Nucleus sampling threshold in (0, 1]; 1 turns it off. Default 0.95.</summary>
    public double TopP { get; init; } = 0.95;

    /// <summary>Most new tokens per continuation. Default 512.</summary>
    public int MaxNewTokens { get; init; } = 512;

    /// <summary>Sampling seed (sources that support one). Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>Generation stops where one of these appears (it is not part of the result). Default none.</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = Array.Empty<string>();

    internal void Validate()
    {
        if (Temperature < 0) throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "Must be non-negative.");
        if (TopP is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "Must be in (0, 1].");
        if (MaxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), MaxNewTokens, "Must be at least 1.");
        if (StopSequences is null || StopSequences.Any(string.IsNullOrEmpty))
            throw new ArgumentException("Stop sequences must be non-empty strings.", nameof(StopSequences));
    }

    // Equality used to group requests into one generation batch (records compare lists by reference).
    internal string BatchKey => FormattableString.Invariant($"{Temperature}|{TopP}|{MaxNewTokens}|{string.Join("\u0001", StopSequences)}");
}
