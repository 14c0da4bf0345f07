namespace Microsoft.ML.StepDpo.Tasks;

/// <summary>One generated word problem with its gold step-by-step solution.</summary>
/// <param name="Id">Stable identifier derived from the question text ("arith-" + 16 hex digits).</param>
/// <param name="Question">The problem, e.g. "Mia has 12 books. Mia buys 6 boxes of 9. Mia gets 24 more. How many books does Mia have now?".</param>
/// <param name="Solution">The gold solution in the Step-DPO format:
/// "Let's think step by step.\nStep 1: 6*9=54.\nStep 2: 12+54=66.\nStep 3: 66+24=90.\nThe answer is 90."</param>
/// <param name="Steps">The bodies of the steps, without the "Step k: " marker, e.g. "6*9=54.".</param>
/// <param name="Answer">The final answer.</param>
public sealed record ArithmeticProblem(string Id, string Question, string Solution, IReadOnlyList<string> Steps, int Answer);
