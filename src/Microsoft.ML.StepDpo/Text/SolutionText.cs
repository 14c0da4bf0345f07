using System.Text;
using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Text;

/// <summary>
/// The one text form of step-by-step solutions used for sampling, rollouts and rectification (so their prefixes
/// match exactly): "Let's think step by step.\nStep 1: …\nStep 2: …", and prefixes that end right after a
/// "Step k:" marker, as Math-Step-DPO-10K's <c>initial_reason_steps</c> do.
/// </summary>
internal static class SolutionText
{
    public const string Preamble = "Let's think step by step.";

    private static readonly Regex s_nextMarker = new(@"\n[ \t]*(?:\*\*)?Step[ \t]+\d+[ \t]*(?:\*\*)?[ \t]*:", RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);

    /// <summary>The prefix before step <paramref name="step"/> (1-based): the preamble, steps 1..step-1, and "Step {step}:".</summary>
    public static string PrefixBefore(IReadOnlyList<string> steps, int step)
    {
        if (step < 1 || step > steps.Count + 1) throw new ArgumentOutOfRangeException(nameof(step));
        var sb = new StringBuilder(Preamble);
        for (int i = 1; i < step; i++)
            sb.Append("\nStep ").Append(i).Append(": ").Append(steps[i - 1]);
        sb.Append("\nStep ").Append(step).Append(':');
        return sb.ToString();
    }

    /// <summary>The continuation of <see cref="PrefixBefore"/> that the original solution has: " s_k\nStep k+1: s_k+1…".</summary>
    public static string ContinuationFrom(IReadOnlyList<string> steps, int step)
    {
        var sb = new StringBuilder();
        for (int i = step; i <= steps.Count; i++)
        {
            if (i > step) sb.Append("\nStep ").Append(i).Append(':');
            sb.Append(' ').Append(steps[i - 1]);
        }
        return sb.ToString();
    }

    /// <summary>The whole solution in the canonical form.</summary>
    public static string Full(IReadOnlyList<string> steps) =>
        steps.Count == 0 ? Preamble : PrefixBefore(steps, 1) + ContinuationFrom(steps, 1);

    /// <summary>
    /// The first step of a continuation of a prefix that ends with "Step k:": the text up to the next "Step j:" marker,
    /// trimmed and led by one space (" 12+54=66."), the same shape as <see cref="StepBody"/>.
    /// </summary>
    public static string FirstStep(string continuation)
    {
        var m = s_nextMarker.Match(continuation);
        return StepBody(m.Success ? continuation[..m.Index] : continuation);
    }

    /// <summary>A step's text as a chosen/rejected value: trimmed, led by one space; empty stays empty.</summary>
    public static string StepBody(string step)
    {
        string t = step.Trim();
        return t.Length == 0 ? string.Empty : " " + t;
    }
}
