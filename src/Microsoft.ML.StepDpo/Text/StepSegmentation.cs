using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Text;

/// <summary>One step: its trimmed text and where it starts in the source (UTF-16 offset).</summary>
internal readonly record struct Step(string Text, int Offset);

/// <summary>The segmentation settings a model carries (serialized into the saved model).</summary>
internal sealed class SegmentationSettings
{
    public SegmentationMode Mode { get; set; }
    public string? CustomPattern { get; set; }
    public bool KeepPreamble { get; set; }
    public AnswerLineHandling AnswerLine { get; set; }
}

/// <summary>The segmentation algorithm (pure; thread-safe).</summary>
internal static class StepSegmentation
{
    private static readonly TimeSpan s_regexTimeout = TimeSpan.FromSeconds(1);

    // "Step 3:", "Step 3.", "Step 3)", "**Step 3:**", "**Step 3**:", "### Step 3:", at a line start or after a
    // sentence end ("Let's think step by step. Step 1:" occurs in the published data).
    private static readonly Regex s_marker = new(
        @"(?:(?<=^)|(?<=\n)|(?<=[.!?:]\s+)|(?<=\$\s+))[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*Step[ \t]+\d+[ \t]*(?:\*\*|__)?[ \t]*[:.)](?!\d)(?:[ \t]*(?:\*\*|__))?",
        RegexOptions.CultureInvariant | RegexOptions.Compiled, s_regexTimeout);

    private static readonly Regex s_preamble = new(
        @"^\s*(?:\*\*)?Let[’']?s\s+think\s+step\s+by\s+step[.:!]?(?:\*\*)?",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Compiled, s_regexTimeout);

    private static readonly Regex s_answerLine = new(
        @"^\s*(?:(?:\*\*)?(?:the\s+)?(?:final\s+)?answer\s+is\b|####|(?:\$\$?|\\\[|\\\()?\s*\\boxed\s*\{.*\}\s*(?:\$\$?|\\\]|\\\))?\s*\.?\s*$)",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Compiled, s_regexTimeout);

    private static readonly Regex s_blankLines = new(@"\n[ \t\r]*\n", RegexOptions.CultureInvariant | RegexOptions.Compiled, s_regexTimeout);

    /// <summary>Cuts <paramref name="text"/> into steps; empty or whitespace text gives no steps.</summary>
    public static List<Step> Segment(string? text, SegmentationSettings settings, Regex? customPattern = null)
    {
        var steps = new List<Step>();
        if (string.IsNullOrWhiteSpace(text))
            return steps;

        // The final-answer line is the last non-blank line when it looks like one.
        int bodyEnd = text.Length;
        (int Start, int End)? answer = null;
        int lastLineEnd = text.Length;
        while (lastLineEnd > 0 && char.IsWhiteSpace(text[lastLineEnd - 1])) lastLineEnd--;
        int lastLineStart = text.LastIndexOf('\n', Math.Max(0, lastLineEnd - 1)) + 1;
        if (s_answerLine.IsMatch(text.AsSpan(lastLineStart, lastLineEnd - lastLineStart).ToString()))
        {
            answer = (lastLineStart, lastLineEnd);
            bodyEnd = lastLineStart;
        }

        var spans = new List<(int Start, int End)>();
        var mode = settings.Mode;
        if (mode == SegmentationMode.CustomPattern && customPattern is null)
            throw new InvalidOperationException("SegmentationMode.CustomPattern needs a pattern.");
        var markerRegex = mode == SegmentationMode.CustomPattern ? customPattern! : s_marker;
        MatchCollection? markers = null;
        if (mode is SegmentationMode.Auto or SegmentationMode.StepMarkers or SegmentationMode.CustomPattern)
        {
            markers = markerRegex.Matches(text[..bodyEnd]);
            if (mode == SegmentationMode.Auto && markers.Count > 0)
                mode = SegmentationMode.StepMarkers;
        }

        if (mode is SegmentationMode.StepMarkers or SegmentationMode.CustomPattern)
        {
            int start = 0;
            int end;
            foreach (Match m in markers!)
            {
                if (m.Length == 0) continue; // an empty match cannot delimit anything
                end = m.Index;
                spans.Add((start, end));
                start = m.Index + m.Length;
            }
            spans.Add((start, bodyEnd));
            // The first span is the text before the first marker (the preamble area).
        }
        else
        {
            if (mode == SegmentationMode.Auto)
                mode = CountParagraphs(text, bodyEnd) >= 2 ? SegmentationMode.Paragraphs : SegmentationMode.Lines;
            if (mode == SegmentationMode.Paragraphs)
            {
                int start = 0;
                foreach (Match m in s_blankLines.Matches(text[..bodyEnd]))
                {
                    spans.Add((start, m.Index));
                    start = m.Index + m.Length;
                }
                spans.Add((start, bodyEnd));
            }
            else
            {
                int start = 0;
                while (start < bodyEnd)
                {
                    int nl = text.IndexOf('\n', start, bodyEnd - start);
                    int end = nl < 0 ? bodyEnd : nl;
                    spans.Add((start, end));
                    start = end + 1;
                }
            }
        }

        // Preamble: "Let's think step by step." at the very beginning is removed (or kept as its own step);
        // any other text before the first step stays as a step.
        int firstSpan = spans.FindIndex(s => !IsBlank(text, s.Start, s.End));
        if (firstSpan >= 0)
        {
            var (s0, e0) = spans[firstSpan];
            var pm = s_preamble.Match(text, s0, e0 - s0);
            if (pm.Success)
            {
                spans[firstSpan] = (pm.Index + pm.Length, e0);
                if (settings.KeepPreamble)
                    spans.Insert(firstSpan, (pm.Index, pm.Index + pm.Length));
            }
        }

        if (answer is { } a)
        {
            switch (settings.AnswerLine)
            {
                case AnswerLineHandling.KeepInLastStep:
                    int last = spans.FindLastIndex(s => !IsBlank(text, s.Start, s.End));
                    if (last >= 0 && last == spans.Count - 1)
                        spans[last] = (spans[last].Start, a.End);
                    else
                        spans.Add(a); // the last step ended with a marker of its own: the answer line follows it
                    break;
                case AnswerLineHandling.SeparateStep:
                    spans.Add(a);
                    break;
            }
        }

        foreach (var (s, e) in spans)
        {
            int ts = s, te = e;
            while (ts < te && char.IsWhiteSpace(text[ts])) ts++;
            while (te > ts && char.IsWhiteSpace(text[te - 1])) te--;
            if (te > ts)
                steps.Add(new Step(text.Substring(ts, te - ts), ts));
        }
        return steps;
    }

    private static bool IsBlank(string text, int start, int end)
    {
        for (int i = start; i < end; i++)
            if (!char.IsWhiteSpace(text[i])) return false;
        return true;
    }

    private static int CountParagraphs(string text, int end)
    {
        int count = 0, start = 0;
        foreach (Match m in s_blankLines.Matches(text[..end]))
        {
            if (!IsBlank(text, start, m.Index)) count++;
            start = m.Index + m.Length;
        }
        if (!IsBlank(text, start, end)) count++;
        return count;
    }

    /// <summary>Compiles a user pattern with a time bound per match.</summary>
    public static Regex CompileCustom(string pattern) =>
        new(pattern, RegexOptions.CultureInvariant | RegexOptions.Multiline, s_regexTimeout);
}
