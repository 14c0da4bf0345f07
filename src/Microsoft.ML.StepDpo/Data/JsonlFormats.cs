namespace Microsoft.ML.StepDpo.Data;

/// <summary>The fields of the dataset formats Step-DPO works with (all read as text columns).</summary>
internal static class JsonlFormats
{
    /// <summary>Math-Step-DPO-10K: the eight fields; <c>prefix</c> (the name the Step-DPO authors' data-pipeline scripts write) is accepted for <c>initial_reason_steps</c>.</summary>
    public static readonly JsonlField[] StepDpo =
    {
        new("dataset") { MayBeAbsentFromFile = true },
        new("prompt", Required: true),
        new("initial_reason_steps", false, "prefix") { MayBeAbsentFromFile = true },
        new("chosen", Required: true),
        new("rejected") { MayBeAbsentFromFile = true }, // some published rows have it empty
        new("full_chosen") { MayBeAbsentFromFile = true },
        new("full_rejected") { MayBeAbsentFromFile = true },
        new("answer") { MayBeAbsentFromFile = true },
    };

    /// <summary>GSM8K: <c>question</c>, <c>answer</c> (reasoning ending "#### N"); derived column <c>final_answer</c>.</summary>
    public static readonly JsonlField[] Gsm8k = { new("question", Required: true), new("answer", Required: true) };

    /// <summary>MATH: <c>problem</c>, <c>solution</c> (with \boxed{}), <c>level</c>, <c>type</c>; derived column <c>final_answer</c>.</summary>
    public static readonly JsonlField[] Math = { new("problem", Required: true), new("solution", Required: true), new("level") { MayBeAbsentFromFile = true }, new("type") { MayBeAbsentFromFile = true } };

    /// <summary>The GSM8K gold answer: the text after the last "####", without thousands separators.</summary>
    public static string Gsm8kFinalAnswer(string answer)
    {
        int i = answer.LastIndexOf("####", StringComparison.Ordinal);
        return i < 0 ? string.Empty : answer[(i + 4)..].Trim().Replace(",", "");
    }
}
