namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>How <see cref="TextGenerator"/> samples.</summary>
internal sealed record GenerationOptions
{
    /// <summary>Most tokens generated per sequence. Default 256.</summary>
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>Softmax temperature; 0 means greedy (argmax). Default 0.</summary>
    public double Temperature { get; init; }
    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches this. Default 1 (off).</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Keep only the k most likely tokens; 0 = off. Default 0.</summary>
    public int TopK { get; init; }
    /// <summary>Seed of the sampling generator; the same seed, prompts and model give the same output. Default 0.</summary>
    public long Seed { get; init; }
    /// <summary>Generation of a sequence stops once its decoded text contains one of these (e.g. "\nStep "). Needs a decoder.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = Array.Empty<string>();
    /// <summary>End-of-sequence ids; generation of a sequence stops after emitting one.</summary>
    public IReadOnlyList<int> EosIds { get; init; } = Array.Empty<int>();
    /// <summary>Streaming: called with (sequence index, token id) as each token is generated.</summary>
    public Action<int, int>? OnToken { get; init; }

    internal void Validate()
    {
        if (MaxNewTokens < 0) throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), "must be non-negative.");
        if (Temperature < 0) throw new ArgumentOutOfRangeException(nameof(Temperature), "must be non-negative.");
        if (TopP is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(TopP), "must be in (0, 1].");
        if (TopK < 0) throw new ArgumentOutOfRangeException(nameof(TopK), "must be non-negative.");
        if (StopStrings.Any(string.IsNullOrEmpty)) throw new ArgumentException("Stop strings must be non-empty.", nameof(StopStrings));
    }
}

/// <summary>Why a sequence stopped.</summary>
internal enum StopReason
{
    MaxTokens,
    EndOfSequence,
    StopString,
}

/// <summary>One generated continuation.</summary>
/// <param name="Tokens">Generated ids (including the EOS or the token that completed a stop string).</param>
/// <param name="Text">Decoded text, cut before the stop string; null without a decoder.</param>
/// <param name="Reason">Why generation stopped.</param>
/// <param name="StopString">The stop string that matched, if any.</param>
internal sealed record GenerationResult(int[] Tokens, string? Text, StopReason Reason, string? StopString);
