namespace Microsoft.ML.StepDpo.Answers;

/// <summary>What the model wrote for one problem and how it was graded.</summary>
/// <param name="Question">The problem.</param>
/// <param name="Reference">The reference final answer.</param>
/// <param name="Solution">The solution as graded: the forced opening ("Let's think step by step.\nStep 1: ") plus the generated text.</param>
/// <param name="Extracted">The final answer found in <paramref name="Solution"/> (normalized; empty when none).</param>
/// <param name="Correct">Whether <paramref name="Extracted"/> is equivalent to the reference.</param>
public sealed record EvaluatedSolution(string Question, string Reference, string Solution, string Extracted, bool Correct);
