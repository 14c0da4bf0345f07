namespace Microsoft.ML.StepDpo.Answers;

/// <summary>Accuracy of final answers over a set of rows (or one group of them).</summary>
public sealed class AnswerMetrics
{
    /// <summary>Metrics of <paramref name="correct"/> right answers out of <paramref name="count"/> (e.g. to pool several runs).</summary>
    /// <param name="count">Number of rows; not negative.</param>
    /// <param name="correct">Rows whose answer is right; between 0 and <paramref name="count"/>.</param>
    public AnswerMetrics(long count, long correct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (correct < 0 || correct > count) throw new ArgumentOutOfRangeException(nameof(correct), correct, "Must be between 0 and count.");
        Count = count;
        Correct = correct;
        Accuracy = count == 0 ? 0 : (double)correct / count;
        (ConfidenceLower, ConfidenceUpper) = Wilson(correct, count);
    }

    /// <summary>Number of rows.</summary>
    public long Count { get; }

    /// <summary>Rows whose answer is equivalent to the reference answer.</summary>
    public long Correct { get; }

    /// <summary>Correct / Count (0 when there are no rows).</summary>
    public double Accuracy { get; }

    /// <summary>Lower end of the 95% Wilson score interval of the accuracy.</summary>
    public double ConfidenceLower { get; }

    /// <summary>Upper end of the 95% Wilson score interval of the accuracy.</summary>
    public double ConfidenceUpper { get; }

    /// <summary>Metrics per value of the group column (empty when no group column was given).</summary>
    public IReadOnlyDictionary<string, AnswerMetrics> PerGroup { get; internal set; } = new Dictionary<string, AnswerMetrics>();

    // The Wilson interval behaves at 0% and 100% and for small n, unlike the normal approximation.
    private static (double, double) Wilson(long k, long n)
    {
        if (n == 0) return (0, 1);
        const double z = 1.959963984540054;
        double p = (double)k / n, z2 = z * z;
        double denom = 1 + z2 / n;
        double center = (p + z2 / (2 * n)) / denom;
        double half = z * Math.Sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / denom;
        return (Math.Max(0, center - half), Math.Min(1, center + half));
    }

    /// <inheritdoc/>
    public override string ToString() => $"accuracy: {Accuracy:F4} (n={Count})";
}
