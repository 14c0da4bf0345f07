using System.Diagnostics;

namespace StepDpo.Tools.Sampling;

/// <summary>Counters of a generation thread: batches, rows, tokens and where its time went.</summary>
internal sealed class GenerationStats
{
    public long Batches, Rows, PromptTokens, RowSteps, Tokens, BusyTicks, TokenizeTicks, PrefillTicks, DecodeTicks;

    public void Add(ref long field, long value) => Interlocked.Add(ref field, value);

    public static double Seconds(long ticks) => (double)ticks / Stopwatch.Frequency;

    public override string ToString() =>
        $"batches {Batches}, rows {Rows} ({(double)Rows / Math.Max(1, Batches):F1}/batch), prompt tokens {PromptTokens}, new tokens {Tokens}, " +
        $"row-steps {RowSteps} ({(double)Tokens / Math.Max(1, RowSteps):P0} useful); busy {Seconds(BusyTicks):F1} s = tokenize {Seconds(TokenizeTicks):F2} + prefill {Seconds(PrefillTicks):F1} + decode {Seconds(DecodeTicks):F1} s";
}
