namespace Microsoft.ML.StepDpo.Tasks;

/// <summary>The binary operations a generated problem may use in its steps.</summary>
[Flags]
public enum ArithmeticOperations
{
    /// <summary>No operation (not a valid setting on its own).</summary>
    None = 0,

    /// <summary>Addition: "gets 5 more", and the second step of "buys 3 boxes of 4".</summary>
    Add = 1,

    /// <summary>Subtraction: "gives away 5", and the second step of "gives 3 friends 4 each".</summary>
    Subtract = 2,

    /// <summary>Multiplication: "has 3 times as many", and the first step of the group events.</summary>
    Multiply = 4,

    /// <summary>All of <see cref="Add"/>, <see cref="Subtract"/> and <see cref="Multiply"/>.</summary>
    All = Add | Subtract | Multiply,
}
