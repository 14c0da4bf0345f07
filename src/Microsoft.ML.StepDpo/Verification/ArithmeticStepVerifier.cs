using Microsoft.ML.StepDpo.Verification.Arithmetic;

namespace Microsoft.ML.StepDpo.Verification;

/// <summary>
/// Checks the calculations a step states, exactly, from the text: "16 - 3 - 4 = 9", GSM8K's
/// "&lt;&lt;16-3-4=9&gt;&gt;9", "9 * 2 = $18", "80,000*1.5=120,000", LaTeX (\times, \cdot, \frac{a}{b}),
/// percentages ("20% of 50 = 10", "50*20% = 10"), chains "a = b = c", parentheses and "^".
/// </summary>
/// <remarks>
/// A step with a wrong stated result is <see cref="StepVerdict.Incorrect"/>. Rounding the text itself shows
/// is tolerated ("10/3 = 3.33", "= 3.3", "≈ 3", cents). Precision comes first: anything not confidently
/// read as arithmetic (words or units that may carry an operation, variables, times of day, ranges,
/// unit conversions) is not checked. Correct arithmetic does not make a step right (it may use the wrong
/// numbers), so steps whose calculations all hold are <see cref="StepVerdict.Unknown"/> with evidence
/// saying what was checked — unless <see cref="ConfirmsCorrectCalculations"/> is set, which suits tasks
/// whose only failure mode is arithmetic.
/// </remarks>
public sealed class ArithmeticStepVerifier : IStepVerifier
{
    /// <summary>Creates the verifier.</summary>
    /// <param name="confirmsCorrectCalculations">Report steps whose calculations all hold as
    /// <see cref="StepVerdict.Correct"/> instead of <see cref="StepVerdict.Unknown"/>. Default false.</param>
    public ArithmeticStepVerifier(bool confirmsCorrectCalculations = false)
    {
        ConfirmsCorrectCalculations = confirmsCorrectCalculations;
    }

    /// <summary>"arithmetic".</summary>
    public string Name => "arithmetic";

    /// <summary>Whether steps whose calculations all hold are reported <see cref="StepVerdict.Correct"/>.</summary>
    public bool ConfirmsCorrectCalculations { get; }

    /// <inheritdoc />
    public Task<IReadOnlyList<StepCheck>> VerifyAsync(StepVerificationInput input, CancellationToken cancellationToken = default)
    {
        if (input is null)
            throw new ArgumentNullException(nameof(input));
        if (input.Steps is null)
            throw new ArgumentException("The input has no steps list.", nameof(input));
        var checks = new StepCheck[input.Steps.Count];
        for (int i = 0; i < checks.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            checks[i] = CheckStep(input.Steps[i] ?? string.Empty);
        }

        return Task.FromResult<IReadOnlyList<StepCheck>>(checks);
    }

    /// <summary>Checks one step's text.</summary>
    public StepCheck CheckStep(string step)
    {
        if (step is null)
            throw new ArgumentNullException(nameof(step));
        var calculations = CalculationChecker.Check(step);
        var wrong = calculations.FirstOrDefault(c => !c.Holds);
        if (wrong is not null)
            return new StepCheck(StepVerdict.Incorrect, $"{wrong.Text}, but {wrong.Explanation}");
        if (calculations.Count == 0)
            return StepCheck.Unknown;
        string evidence = "calculations hold: " + string.Join("; ", calculations.Select(c => c.Text).Distinct());
        return new StepCheck(ConfirmsCorrectCalculations ? StepVerdict.Correct : StepVerdict.Unknown, evidence);
    }
}
