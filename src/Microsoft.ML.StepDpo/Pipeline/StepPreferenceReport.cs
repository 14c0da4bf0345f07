namespace Microsoft.ML.StepDpo.Pipeline;

/// <summary>
/// Per-stage counts of the step-preference pipeline, over every problem recorded in the progress file (so a resumed
/// run reports the totals of all its runs).
/// </summary>
public sealed record StepPreferenceReport
{
    /// <summary>Problems in the input.</summary>
    public int TotalProblems { get; init; }

    /// <summary>Problems done (including those done by earlier runs of the same output).</summary>
    public int Problems { get; init; }

    /// <summary>Problems that were already done when this run started (resumed).</summary>
    public int Resumed { get; init; }

    /// <summary>Solutions sampled (K per problem).</summary>
    public long Sampled { get; init; }

    /// <summary>Distinct sampled solutions whose final answer is wrong.</summary>
    public long Wrong { get; init; }

    /// <summary>Wrong solutions whose first wrong step was found.</summary>
    public long Located { get; init; }

    /// <summary>Located solutions with at least one continuation from the correct prefix that reaches the answer (and differs from the wrong step).</summary>
    public long Rectified { get; init; }

    /// <summary>Step-preference rows written.</summary>
    public long Pairs { get; init; }

    /// <summary>Answer-level pairs written (when an answer-pairs output is set).</summary>
    public long AnswerPairs { get; init; }

    /// <summary>
    /// Problems skipped because a prompt of theirs (the problem, or a prefix of one of its solutions) does not fit the
    /// policy's context (see <see cref="StepPreferenceOptions.FailBeyondContext"/>); they count as done in <see cref="Problems"/>.
    /// </summary>
    public long BeyondContext { get; init; }

    internal StepPreferenceReport Add(ProblemCounts c) => this with
    {
        Problems = Problems + 1,
        Sampled = Sampled + c.Sampled,
        Wrong = Wrong + c.Wrong,
        Located = Located + c.Located,
        Rectified = Rectified + c.Rectified,
        Pairs = Pairs + c.Pairs,
        AnswerPairs = AnswerPairs + c.AnswerPairs,
        BeyondContext = BeyondContext + c.BeyondContext,
    };
}

/// <summary>The counts of one problem, as the progress record stores them.</summary>
internal sealed record ProblemCounts(int Sampled, int Wrong, int Located, int Rectified, int Pairs, int AnswerPairs, int BeyondContext = 0)
{
    /// <summary>A problem skipped because a prompt of it does not fit the policy's context.</summary>
    public static readonly ProblemCounts SkippedBeyondContext = new(0, 0, 0, 0, 0, 0, BeyondContext: 1);
}
