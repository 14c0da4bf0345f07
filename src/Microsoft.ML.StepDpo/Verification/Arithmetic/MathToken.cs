namespace Microsoft.ML.StepDpo.Verification.Arithmetic;

internal enum MathTokenKind { Number, Operator, LeftParen, RightParen, Equals, Word, Punct }

/// <summary>A token of step text. <see cref="SpaceBefore"/> tells glued tokens ("3:30", "2x") from separate ones.</summary>
internal sealed class MathToken
{
    public MathTokenKind Kind { get; set; }

    public string Text { get; set; } = string.Empty;

    public bool SpaceBefore { get; set; }

    /// <summary>Number value as written (percent sign not applied).</summary>
    public double Value { get; init; }

    /// <summary>Digits after the decimal point as written.</summary>
    public int Decimals { get; init; }

    public bool Percent { get; init; }

    /// <summary>Stated as rounded ("about 3.33", "roughly 3,300"): equal to the precision it shows.</summary>
    public bool Rounded { get; init; }

    /// <summary>For <see cref="MathTokenKind.Equals"/>: "≈" or "~" rather than "=".</summary>
    public bool Approximate { get; init; }

    /// <summary>A unit word was dropped right after this number ("2 hours * 60").</summary>
    public bool HadUnit { get; set; }

    public bool IsValue => Kind is MathTokenKind.Number or MathTokenKind.RightParen;

    public override string ToString() => Text;
}
