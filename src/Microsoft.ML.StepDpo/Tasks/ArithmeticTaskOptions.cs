namespace Microsoft.ML.StepDpo.Tasks;

/// <summary>
/// Difficulty of the built-in arithmetic task. Every step is one binary operation "a op b=c" on whole
/// numbers; the number of steps is the length of the reasoning chain, and the operand ranges and
/// <see cref="MaxValue"/> bound how many digits the model must compute with.
/// Start from a preset (<see cref="Easy"/>, <see cref="Default"/>, <see cref="Hard"/>) and adjust.
/// </summary>
public sealed class ArithmeticTaskOptions
{
    /// <summary>Fewest steps (binary operations) in a solution. Default 2.</summary>
    public int MinSteps { get; set; } = 2;

    /// <summary>Most steps in a solution. Default 4.</summary>
    public int MaxSteps { get; set; } = 4;

    /// <summary>Largest starting quantity ("Mia has N books"); the smallest is 2. Default 99.</summary>
    public int MaxStartValue { get; set; } = 99;

    /// <summary>Largest number added or taken away in one step ("gets N more", "gives away N"). Default 99.</summary>
    public int MaxAddend { get; set; } = 99;

    /// <summary>Largest number of groups in "buys N boxes of M" / "gives N friends M each" (at least 2). Default 9.</summary>
    public int MaxGroupCount { get; set; } = 9;

    /// <summary>Largest group size M in "buys N boxes of M" (at least 2). Default 12.</summary>
    public int MaxGroupSize { get; set; } = 12;

    /// <summary>Largest factor K in "then has K times as many" (at least 2). Default 5.</summary>
    public int MaxScaleFactor { get; set; } = 5;

    /// <summary>Upper bound on every number a step computes (and so on the answer). Default 999.</summary>
    public int MaxValue { get; set; } = 999;

    /// <summary>Operations allowed in steps. Default <see cref="ArithmeticOperations.All"/>.</summary>
    public ArithmeticOperations Operations { get; set; } = ArithmeticOperations.All;

    /// <summary>
    /// Share of the problem space reserved for <see cref="TaskSplit.HeldOut"/> (by a stable hash of the
    /// problem's computation, so a held-out problem never shares its chain of calculations with a
    /// training problem). Default 0.2.
    /// </summary>
    public double HeldOutFraction { get; set; } = 0.2;

    /// <summary>
    /// Small numbers for a model trained from scratch on a CPU: 2–3 steps, operands of 1–2 digits,
    /// results of at most 3 digits (≤ 200), +, - and small *.
    /// </summary>
    public static ArithmeticTaskOptions Easy => new()
    {
        MinSteps = 2,
        MaxSteps = 3,
        MaxStartValue = 20,
        MaxAddend = 20,
        MaxGroupCount = 5,
        MaxGroupSize = 9,
        MaxScaleFactor = 3,
        MaxValue = 200,
    };

    /// <summary>
    /// The samples' demo task (the committed SFT model's): 2–3 steps like <see cref="Easy"/>, but every number at most 50
    /// and single-digit addends, so that a small model trained from scratch on two CPU cores gets a fair share right.
    /// </summary>
    public static ArithmeticTaskOptions Demo => new()
    {
        MinSteps = 2,
        MaxSteps = 3,
        MaxStartValue = 20,
        MaxAddend = 9,
        MaxGroupCount = 3,
        MaxGroupSize = 5,
        MaxScaleFactor = 2,
        MaxValue = 50,
    };

    /// <summary>The defaults: 2–4 steps, operands up to 2 digits, results up to 3 digits.</summary>
    public static ArithmeticTaskOptions Default => new();

    /// <summary>Long chains with larger numbers: 4–7 steps, operands up to 3 digits, results up to 4 digits.</summary>
    public static ArithmeticTaskOptions Hard => new()
    {
        MinSteps = 4,
        MaxSteps = 7,
        MaxStartValue = 999,
        MaxAddend = 999,
        MaxGroupCount = 12,
        MaxGroupSize = 99,
        MaxScaleFactor = 9,
        MaxValue = 9999,
    };

    internal void Validate()
    {
        if (MinSteps < 1)
            throw new ArgumentOutOfRangeException(nameof(MinSteps), MinSteps, "MinSteps must be at least 1.");
        if (MaxSteps < MinSteps)
            throw new ArgumentOutOfRangeException(nameof(MaxSteps), MaxSteps, "MaxSteps must be at least MinSteps.");
        if (MaxStartValue < 2)
            throw new ArgumentOutOfRangeException(nameof(MaxStartValue), MaxStartValue, "MaxStartValue must be at least 2.");
        if (MaxAddend < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxAddend), MaxAddend, "MaxAddend must be at least 1.");
        if (MaxGroupCount < 2)
            throw new ArgumentOutOfRangeException(nameof(MaxGroupCount), MaxGroupCount, "MaxGroupCount must be at least 2.");
        if (MaxGroupSize < 2)
            throw new ArgumentOutOfRangeException(nameof(MaxGroupSize), MaxGroupSize, "MaxGroupSize must be at least 2.");
        if (MaxScaleFactor < 2)
            throw new ArgumentOutOfRangeException(nameof(MaxScaleFactor), MaxScaleFactor, "MaxScaleFactor must be at least 2.");
        if (MaxValue < MaxStartValue)
            throw new ArgumentOutOfRangeException(nameof(MaxValue), MaxValue, "MaxValue must be at least MaxStartValue.");
        if ((Operations & ArithmeticOperations.All) == ArithmeticOperations.None || (Operations & ~ArithmeticOperations.All) != 0)
            throw new ArgumentOutOfRangeException(nameof(Operations), Operations, "Operations must be a non-empty combination of Add, Subtract and Multiply.");
        if (!(HeldOutFraction > 0 && HeldOutFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(HeldOutFraction), HeldOutFraction, "HeldOutFraction must be strictly between 0 and 1.");
    }
}
