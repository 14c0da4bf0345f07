namespace Microsoft.ML.StepDpo.Tasks;

/// <summary>
/// The fixed, small vocabulary of the arithmetic task. Placeholders: {N} name, {O} objects,
/// {A} and {B} numbers. Kept small on purpose so a character-level model spends its capacity on
/// the arithmetic, not on the language.
/// </summary>
internal static class ArithmeticTemplates
{
    public static readonly string[] Names = ["Mia", "Ben", "Ava", "Sam", "Leo", "Zoe", "Max", "Ivy"];

    public static readonly string[] Objects = ["books", "apples", "coins", "cards", "pens", "shells", "stickers", "marbles"];

    public const string Start = "{N} has {A} {O}.";

    /// <summary>x + A.</summary>
    public static readonly string[] Gain = ["{N} gets {A} more.", "{N} buys {A} more.", "{N} finds {A} more."];

    /// <summary>x - A.</summary>
    public static readonly string[] Lose = ["{N} gives away {A}.", "{N} loses {A}.", "{N} sells {A}."];

    /// <summary>A*B, then x + that.</summary>
    public static readonly string[] GainGroups = ["{N} buys {A} boxes of {B}.", "{N} gets {A} bags of {B}."];

    /// <summary>A*B, then x - that.</summary>
    public static readonly string[] LoseGroups = ["{N} gives {A} friends {B} each."];

    /// <summary>x * A.</summary>
    public static readonly string[] Scale = ["{N} now has {A} times as many."];

    public const string Question = "How many {O} now?";

    /// <summary>First line of every solution (Step-DPO's evaluation prompts end with it).</summary>
    public const string SolutionHeader = "Let's think step by step.";

    public const string AnswerPrefix = "The answer is ";

    public static string Fill(string template, string name, string objects, int a = 0, int b = 0) =>
        template.Replace("{N}", name).Replace("{O}", objects)
            .Replace("{A}", a.ToString(System.Globalization.CultureInfo.InvariantCulture))
            .Replace("{B}", b.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Every character any question or solution can contain, sorted.</summary>
    public static IReadOnlyList<char> ComputeAlphabet()
    {
        var set = new SortedSet<char>();
        void Add(string s)
        {
            foreach (var p in new[] { "{N}", "{O}", "{A}", "{B}" })
                s = s.Replace(p, string.Empty);
            foreach (var c in s)
                set.Add(c);
        }

        foreach (var s in Names.Concat(Objects).Concat(Gain).Concat(Lose).Concat(GainGroups).Concat(LoseGroups).Concat(Scale))
            Add(s);
        Add(Start);
        Add(Question);
        Add(" "); // between sentences
        Add("0123456789");
        // Solution lines: "Let's think step by step.\nStep 1: 6*9=54.\n...\nThe answer is 90."
        Add(SolutionHeader);
        Add("\nStep : +-*=.");
        Add(AnswerPrefix);
        return set.ToArray();
    }
}
