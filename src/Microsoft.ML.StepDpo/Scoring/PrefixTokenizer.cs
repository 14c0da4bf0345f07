using Microsoft.ML.StepDpo.Modeling.Tokenization;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// Token ids of the prefixes of one text, each in work proportional to its last line rather than to its length.
/// The text is cut at "hard boundaries": a line break followed by a character that is not white space. No split
/// regex of a byte-level BPE (GPT-2, Llama 3, Qwen) joins or looks across such a point, so the tokens of a prefix are
/// the tokens of the whole lines before its last boundary followed by the tokens of the rest. Each line is encoded once;
/// a prefix costs one encoding of its last line. The concatenated lines are checked once against the encoding of the
/// whole covered text; where they differ (a tokenizer that does look across line starts), <see cref="IsExact"/> is
/// false and the caller must encode whole prefixes.
/// </summary>
internal sealed class PrefixTokenizer
{
    private readonly ByteLevelBpeTokenizer _tokenizer;
    private readonly string _text;
    private readonly List<int> _lineStarts = new();   // char offset of each encoded line
    private readonly List<int> _lineTokens = new();   // token offset of each encoded line in Ids
    private readonly List<int> _ids = new();
    private readonly Action<int> _countChars;

    /// <param name="tokenizer">The tokenizer.</param>
    /// <param name="text">The whole text.</param>
    /// <param name="maxTokens">Lines are encoded until their tokens pass this many (the rest cannot be scored).</param>
    /// <param name="maxChars">Nothing at or past this character is encoded.</param>
    /// <param name="countChars">Told the length of every text that is encoded (a work counter).</param>
    public PrefixTokenizer(ByteLevelBpeTokenizer tokenizer, string text, int maxTokens, int maxChars, Action<int> countChars)
    {
        _tokenizer = tokenizer;
        _text = text;
        _countChars = countChars;
        int limit = Math.Min(text.Length, maxChars);
        int start = 0;
        while (start < limit && _ids.Count <= maxTokens)
        {
            int end = NextBoundary(start);
            if (end > limit)
            {
                end = limit;
                Truncated = true;
            }
            _lineStarts.Add(start);
            _lineTokens.Add(_ids.Count);
            _ids.AddRange(Encode(start, end));
            start = end;
        }
        CoveredChars = start;
        // The last line may be cut at maxChars; its tokens near the cut are not those of the whole text, so the
        // check covers the complete lines only.
        int checkedLines = Truncated ? _lineStarts.Count - 1 : _lineStarts.Count;
        int checkedChars = checkedLines == _lineStarts.Count ? CoveredChars : _lineStarts[checkedLines];
        int checkedTokens = checkedLines == _lineStarts.Count ? _ids.Count : _lineTokens[checkedLines];
        bool plain = tokenizer.Definition.PrefixIds.Length == 0 && tokenizer.Definition.SuffixIds.Length == 0; // no BOS/EOS per line
        IsExact = plain && (checkedLines <= 1 || Encode(0, checkedChars).AsSpan().SequenceEqual(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ids)[..checkedTokens]));
    }

    /// <summary>The encoded lines, concatenated: the tokens of the text up to <see cref="CoveredChars"/>.</summary>
    public List<int> Ids => _ids;

    /// <summary>How much of the text was encoded (less than its length when the token or character limit was reached).</summary>
    public int CoveredChars { get; }

    /// <summary>Whether the last encoded line was cut at the character limit.</summary>
    public bool Truncated { get; }

    /// <summary>Whether the tokens of the text equal the concatenation of the tokens of its lines.</summary>
    public bool IsExact { get; }

    /// <summary>
    /// The tokens of <c>text[..end]</c> (0 &lt; end ≤ <see cref="CoveredChars"/>) as the token count of the whole lines
    /// before it (a prefix of <see cref="Ids"/>) and the tokens of the remaining part of its last line.
    /// </summary>
    public (int LeadTokens, int[] Tail) Prefix(int end)
    {
        // The last line start strictly before end: a boundary at end itself is not hard (nothing follows it there).
        int line = _lineStarts.BinarySearch(end - 1);
        if (line < 0) line = ~line - 1;
        int start = _lineStarts[line];
        return (_lineTokens[line], Encode(start, end));
    }

    private int[] Encode(int start, int end)
    {
        _countChars(end - start);
        return _tokenizer.Encode(_text[start..end]);
    }

    private int NextBoundary(int start)
    {
        for (int i = _text.IndexOf('\n', start); i >= 0; i = _text.IndexOf('\n', i + 1))
        {
            if (i + 1 < _text.Length && !char.IsWhiteSpace(_text[i + 1]) && i + 1 > start)
                return i + 1;
        }
        return _text.Length;
    }
}
