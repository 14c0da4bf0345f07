namespace Microsoft.ML.StepDpo.Verification;

/// <summary>What a verifier concluded about one reasoning step.</summary>
public enum StepVerdict
{
    /// <summary>The verifier has nothing to say about this step (it is not the kind of step it can check).</summary>
    Unknown = 0,

    /// <summary>The step is right.</summary>
    Correct = 1,

    /// <summary>The step is not wrong but does not move the solution forward (a judge's "neutral").</summary>
    Neutral = 2,

    /// <summary>The step is wrong.</summary>
    Incorrect = 3,
}
