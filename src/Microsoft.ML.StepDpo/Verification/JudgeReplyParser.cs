using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Verification;

/// <summary>
/// Reads the verdict block of a judge's reply: lower-cased, the text after the last "final decision", then
/// "step k: correct|neutral|incorrect" entries (also "**Step k**: Incorrect", "Step k - wrong", "k. correct").
/// The first entry for a step counts; steps after the first incorrect one, and steps not mentioned, are unknown.
/// </summary>
internal static class JudgeReplyParser
{
    private const string Verdict = @"(?<v>incorrect|not\s+correct|wrong|correct|neutral|right)\b";
    private const string Sep = @"[\s*_`""']*(?:[:：=\-–—.)]|is)?[\s*_`""']*(?:is\s+)?";

    private static readonly Regex s_stepEntry = new(@"step[\s*_]*(?<k>\d+)" + Sep + Verdict,
        RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);

    private static readonly Regex s_numberedEntry = new(@"(?:^|[\n;,])[\s*_\-]*(?<k>\d+)[\s*_]*[.):\-][\s*_]*" + Verdict,
        RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);

    /// <summary>Verdicts for steps 1..<paramref name="stepCount"/>, or null when the reply has no "final decision" block with any verdict.</summary>
    public static StepVerdict[]? Parse(string? reply, int stepCount)
    {
        if (string.IsNullOrEmpty(reply)) return null;
        string lower = reply.ToLowerInvariant();
        int at = lower.LastIndexOf("final decision", StringComparison.Ordinal);
        if (at < 0) return null;
        string block = lower[(at + "final decision".Length)..];

        var verdicts = new StepVerdict[stepCount];
        var seen = new bool[stepCount];
        bool any = false;
        // Linear-time engine, no match timeout: a wall-clock timeout would turn a verdict into "no verdict" under load.
        var matches = s_stepEntry.Matches(block).Cast<Match>().ToList();
        if (matches.Count == 0) matches = s_numberedEntry.Matches(block).Cast<Match>().ToList();
        foreach (var m in matches)
        {
            if (!int.TryParse(m.Groups["k"].Value, out int k) || k < 1 || k > stepCount || seen[k - 1]) continue;
            seen[k - 1] = true;
            any = true;
            verdicts[k - 1] = m.Groups["v"].Value switch
            {
                "correct" or "right" => StepVerdict.Correct,
                "neutral" => StepVerdict.Neutral,
                _ => StepVerdict.Incorrect,
            };
        }
        if (!any) return null;

        // The judge stops at the first incorrect step: anything it says after that is not evidence.
        int firstWrong = Array.IndexOf(verdicts, StepVerdict.Incorrect);
        if (firstWrong >= 0)
            for (int i = firstWrong + 1; i < stepCount; i++) verdicts[i] = StepVerdict.Unknown;
        return verdicts;
    }

    /// <summary>The judge's analysis (the text before the last "final decision"), shortened for evidence.</summary>
    public static string Analysis(string reply, int maxLength = 200)
    {
        int at = reply.ToLowerInvariant().LastIndexOf("final decision", StringComparison.Ordinal);
        string text = (at < 0 ? reply : reply[..at]).Trim().Replace('\n', ' ');
        return text.Length <= maxLength ? text : "…" + text[^maxLength..];
    }
}
