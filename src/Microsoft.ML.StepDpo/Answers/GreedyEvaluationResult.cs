namespace Microsoft.ML.StepDpo.Answers;

/// <summary>Greedy held-out accuracy: the metrics with their 95% interval, and every graded solution in the order of the problems.</summary>
/// <param name="Metrics">Accuracy over all problems.</param>
/// <param name="Solutions">One graded solution per problem, in input order.</param>
public sealed record GreedyEvaluationResult(AnswerMetrics Metrics, IReadOnlyList<EvaluatedSolution> Solutions);
