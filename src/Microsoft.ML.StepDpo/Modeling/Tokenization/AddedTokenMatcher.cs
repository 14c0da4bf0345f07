using System.Buffers;

namespace Microsoft.ML.StepDpo.Modeling.Tokenization;

/// <summary>
/// Finds added tokens in text the way Hugging Face does: scanning left to right, at each position the
/// longest added token that starts there wins (leftmost-longest).
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, string[]> _byFirstChar;
    private readonly SearchValues<char> _firstChars;

    public AddedTokenMatcher(IEnumerable<string> tokens)
    {
        _byFirstChar = tokens.Where(t => t.Length > 0).Distinct(StringComparer.Ordinal)
            .GroupBy(t => t[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Length).ToArray());
        _firstChars = SearchValues.Create(_byFirstChar.Keys.ToArray());
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>Calls <paramref name="gap"/> for each run of plain text and <paramref name="token"/> for each added token, in order.</summary>
    public void Split(ReadOnlySpan<char> text, SpanAction gap, SpanAction token)
    {
        int start = 0, pos = 0;
        while (pos < text.Length)
        {
            int next = text[pos..].IndexOfAny(_firstChars);
            if (next < 0)
                break;
            pos += next;
            string? found = null;
            foreach (string candidate in _byFirstChar[text[pos]])
            {
                if (text[pos..].StartsWith(candidate, StringComparison.Ordinal))
                {
                    found = candidate;
                    break;
                }
            }
            if (found is null)
            {
                pos++;
                continue;
            }
            if (pos > start)
                gap(text, start, pos - start);
            token(text, pos, found.Length);
            pos += found.Length;
            start = pos;
        }
        if (start < text.Length)
            gap(text, start, text.Length - start);
    }

    /// <summary>A callback on a slice (offset, length) of the text being split.</summary>
    public delegate void SpanAction(ReadOnlySpan<char> text, int offset, int length);
}
