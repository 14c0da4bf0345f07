using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Verification;
using Microsoft.ML.StepDpo.Sampling;

namespace Microsoft.ML.StepDpo.Pipeline;

/// <summary>Options of <c>mlContext.StepDpo().BuildStepPreferences(...)</c>: the self-generated step-preference data pipeline.</summary>
public sealed class StepPreferenceOptions
{
    /// <summary>Input text column with the problem. Default "Problem".</summary>
    public string ProblemColumnName { get; set; } = "Problem";

    /// <summary>Input text column with the reference final answer. Default "Answer".</summary>
    public string AnswerColumnName { get; set; } = "Answer";

    /// <summary>
    /// Input text column with a stable problem id, the key of resuming; null to key problems by a hash of their text and
    /// answer (so editing, adding or deleting other input lines never redoes or skips a problem; a repeated problem is
    /// built once). Default null.
    /// </summary>
    public string? IdColumnName { get; set; }

    /// <summary>The policy: samples solutions, rollouts and rectifications (required).</summary>
    public ICompletionSource? Policy { get; set; }

    /// <summary>
    /// Verifiers that locate the first error, in order. Default null: an <see cref="ArithmeticStepVerifier"/>, then a
    /// <see cref="RolloutStepVerifier"/> on <see cref="Policy"/> with <see cref="RolloutsPerPrefix"/> rollouts.
    /// Rollout and judge verifiers given here are switched, for this pipeline, to keep their rollouts (rectification
    /// reuses them) and to let failed requests stop the problem, which is then redone on resume, rather than be
    /// recorded as "no error found".
    /// </summary>
    public IList<IStepVerifier>? Verifiers { get; set; }

    /// <summary>
    /// Keep a chosen candidate (a rectified continuation, or a correct whole sample for the answer-level pairs) only if
    /// none of its steps is flagged wrong by the arithmetic verifiers among <see cref="Verifiers"/>: reaching the right
    /// answer through a wrong calculation happens, and such a step is not a correct step. Default true.
    /// </summary>
    public bool VerifyChosen { get; set; } = true;

    /// <summary>K, solutions sampled per problem in error collection. Default 8.</summary>
    public int SamplesPerProblem { get; set; } = 8;

    /// <summary>M, continuations sampled from the prefix ending at "Step k:" in rectification (rollouts already drawn from that prefix count). Default 8 (the paper uses 20).</summary>
    public int RectificationSamples { get; set; } = 8;

    /// <summary>N, rollouts per examined prefix of the default rollout verifier. Default 8.</summary>
    public int RolloutsPerPrefix { get; set; } = 8;

    /// <summary>How everything is sampled. Default temperature 0.8, top-p 0.95, 512 new tokens (the paper's).</summary>
    public SamplingSettings Sampling { get; set; } = new();

    /// <summary>Count a step judged neutral as the error (the Step-DPO authors' judge protocol). Default true.</summary>
    public bool NeutralIsError { get; set; } = true;

    /// <summary>How sampled solutions are cut into steps. Default <see cref="SegmentationMode.Auto"/>.</summary>
    public SegmentationMode Segmentation { get; set; } = SegmentationMode.Auto;

    /// <summary>
    /// Problems processed at once: their generation requests share batches, so with a local model this times the rows
    /// a problem has in flight (K samples, then N rollouts per wrong solution) should reach the source's batch rows.
    /// The output does not depend on it (problems are committed in input order, and each one's samples depend on its
    /// own seeds). Default 32.
    /// </summary>
    public int MaxConcurrency { get; set; } = 32;

    /// <summary>
    /// The step-preference output (Math-Step-DPO-10K JSONL), appended to; required. A progress record
    /// "<c>OutputPath</c>.progress.jsonl" next to it makes a killed run resume without duplicated or lost rows.
    /// </summary>
    public string? OutputPath { get; set; }

    /// <summary>
    /// Optional output of answer-level pairs (a correct and a wrong whole solution of the same problem, from the same
    /// samples) in the same format, for a DPO baseline. Default null (not written).
    /// </summary>
    public string? AnswerPairsPath { get; set; }

    /// <summary>The <c>dataset</c> field of the output rows. Default "self".</summary>
    public string Dataset { get; set; } = "self";

    /// <summary>
    /// Stop the run at a problem whose prompt (the problem, or a prefix of one of its solutions) does not fit the policy's
    /// context (a <see cref="ContextLengthExceededException"/> from the policy) instead of skipping it. Default false:
    /// the problem is recorded as done with no rows and counted in <see cref="StepPreferenceReport.BeyondContext"/>.
    /// </summary>
    public bool FailBeyondContext { get; set; }

    /// <summary>Base seed of all sampling (each problem derives its own). Default 0.</summary>
    public long Seed { get; set; }

    internal void Validate()
    {
        if (Policy is null) throw new ArgumentException("Options.Policy (the completion source) is required.", "options");
        if (string.IsNullOrWhiteSpace(OutputPath)) throw new ArgumentException("Options.OutputPath is required.", "options");
        if (string.IsNullOrWhiteSpace(ProblemColumnName) || string.IsNullOrWhiteSpace(AnswerColumnName))
            throw new ArgumentException("The problem and answer column names must not be empty.", "options");
        if (SamplesPerProblem < 1) throw new ArgumentOutOfRangeException("options", SamplesPerProblem, "SamplesPerProblem must be at least 1.");
        if (RectificationSamples < 1) throw new ArgumentOutOfRangeException("options", RectificationSamples, "RectificationSamples must be at least 1.");
        if (RolloutsPerPrefix < 1) throw new ArgumentOutOfRangeException("options", RolloutsPerPrefix, "RolloutsPerPrefix must be at least 1.");
        if (MaxConcurrency < 1) throw new ArgumentOutOfRangeException("options", MaxConcurrency, "MaxConcurrency must be at least 1.");
        if (Sampling is null) throw new ArgumentNullException("options", "Options.Sampling must not be null.");
        Sampling.Validate();
        if (Verifiers is { Count: 0 } || Verifiers?.Any(v => v is null) == true)
            throw new ArgumentException("Options.Verifiers must be null (the default) or non-empty without nulls.", "options");
        if (AnswerPairsPath is not null && Path.GetFullPath(AnswerPairsPath) == Path.GetFullPath(OutputPath!))
            throw new ArgumentException("AnswerPairsPath must differ from OutputPath.", "options");
    }
}
