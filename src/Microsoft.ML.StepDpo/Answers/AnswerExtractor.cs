using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Answers;

/// <summary>
/// Finds the final answer in a model's solution, in the order of the answer graders of DeepSeek-Math and
/// Qwen2.5-Math (the Step-DPO authors' evaluation reuses DeepSeek-Math's): "final answer is $…$. I hope" → the last <c>\boxed{…}</c> (brace-matched) → the text after
/// the last "he answer is" → after "final answer is" → a fenced <c>```output</c> block → the last number.
/// The result is normalized with <see cref="AnswerNormalizer"/>. Pure, thread-safe, linear time.
/// </summary>
public static class AnswerExtractor
{
    // Linear-time engine, no match timeout: a timeout measures wall time and would change the answer under load.
    private static readonly Regex s_number = new(@"-?\d*\.?\d+", RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);
    private static readonly Regex s_newlines = new(@"\n\s*", RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);

    /// <summary>The normalized final answer of <paramref name="solution"/>; empty when none is found.</summary>
    public static string Extract(string? solution) => AnswerNormalizer.Normalize(ExtractRaw(solution));

    /// <summary><see cref="Extract(string?)"/> with the unit removal chosen (the plain loop for tests and benchmarks).</summary>
    internal static string Extract(string? solution, bool plainUnits) => AnswerNormalizer.Normalize(ExtractRaw(solution), skipUnits: false, plainUnits);

    /// <summary>The final answer before normalization (the graders' cleanup of ":" and trailing "." and "/" applied).</summary>
    public static string ExtractRaw(string? solution)
    {
        if (string.IsNullOrEmpty(solution)) return string.Empty;
        string s = solution.Replace("\u043a\u0438", "");
        string pred;
        if (s.Contains("final answer is $", StringComparison.Ordinal) && s.Contains("$. I hope", StringComparison.Ordinal))
        {
            string tmp = s[(s.IndexOf("final answer is $", StringComparison.Ordinal) + 17)..];
            int h = tmp.IndexOf("$. I hope", StringComparison.Ordinal);
            pred = (h >= 0 ? tmp[..h] : tmp).Trim();
        }
        else if (s.Contains("boxed", StringComparison.Ordinal))
        {
            string ans = s[(s.LastIndexOf("boxed", StringComparison.Ordinal) + 5)..];
            if (ans.Length == 0) return string.Empty;
            pred = ans[0] == '{' ? BraceContent(ans, 0) : ans.Split('$')[0].Trim();
        }
        else if (s.Contains("he answer is", StringComparison.Ordinal))
            pred = s[(s.LastIndexOf("he answer is", StringComparison.Ordinal) + 12)..].Trim();
        else if (s.Contains("final answer is", StringComparison.Ordinal))
            pred = s[(s.LastIndexOf("final answer is", StringComparison.Ordinal) + 15)..].Trim();
        else if (OutputBlock(s) is { } block)
            pred = block;
        else
        {
            var m = s_number.Matches(s.Replace(",", ""));
            pred = m.Count > 0 ? m[^1].Value : string.Empty;
        }

        if (pred.Contains('\n')) pred = s_newlines.Replace(pred, "");
        if (pred.Length > 0 && pred[0] == ':') pred = pred[1..];
        if (pred.Length > 0 && pred[^1] == '.') pred = pred[..^1];
        if (pred.Length > 0 && pred[^1] == '/') pred = pred[..^1];
        return pred;
    }

    /// <summary>The content of the last <c>\boxed{…}</c> (brace-matched), or null when there is none.</summary>
    public static string? LastBoxed(string? text)
    {
        if (string.IsNullOrEmpty(text)) return null;
        int i = text.LastIndexOf("\\boxed", StringComparison.Ordinal);
        if (i < 0) return null;
        int j = i + 6;
        while (j < text.Length && text[j] == ' ') j++;
        if (j >= text.Length || text[j] != '{') return null;
        return BraceContent(text, j);
    }

    // The text inside the braces opening at start; an unbalanced brace takes the rest (as the graders do).
    private static string BraceContent(string s, int start)
    {
        int depth = 1;
        for (int k = start + 1; k < s.Length; k++)
        {
            char c = s[k];
            if (c == '{') depth++;
            else if (c == '}' && --depth == 0) return s.Substring(start + 1, k - start - 1);
        }
        return s[(start + 1)..];
    }

    // The last fenced program-output block: ```output ... ```.
    private static string? OutputBlock(string s)
    {
        int i = s.LastIndexOf("```output", StringComparison.Ordinal);
        if (i < 0) return null;
        int start = i + 9;
        int end = s.IndexOf("```", start, StringComparison.Ordinal);
        string block = (end < 0 ? s[start..] : s[start..end]).Trim();
        return block.Length == 0 ? null : block;
    }

    /// <summary>The graders' cleaning of a multiple-choice answer: the last standalone letter A–E, else the text.</summary>
    internal static string ChoiceAnswerClean(string pred)
    {
        pred = pred.Trim('\n').TrimEnd('.').TrimEnd('/').Trim(' ').TrimStart(':');
        string? last = null;
        string upper = pred.ToUpperInvariant();
        for (int i = 0; i < upper.Length; i++)
        {
            char c = upper[i];
            if (c is >= 'A' and <= 'E' && (i == 0 || !IsWord(upper[i - 1])) && (i + 1 == upper.Length || !IsWord(upper[i + 1])))
                last = c.ToString();
        }
        string result = last ?? pred.Trim().Trim('.');
        return result.TrimEnd('.').TrimEnd('/');
    }

    private static bool IsWord(char c) => AnswerNormalizer.IsWord(c);
}
