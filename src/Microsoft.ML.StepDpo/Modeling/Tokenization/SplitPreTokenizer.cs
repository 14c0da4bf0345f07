using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Microsoft.ML.StepDpo.Modeling.Tokenization;

/// <summary>
/// Hugging Face's pre-tokenization of a byte-level BPE tokenizer.json: added tokens are cut out whole,
/// then the text between them is split by the Split regex (Isolated: matches and the gaps between them
/// are both pieces), or left whole when there is no regex.
/// </summary>
/// <remarks>
/// The regex comes from Rust, where <c>\p{L}</c>, <c>\p{N}</c> and <c>.</c> see code points; .NET's regex
/// sees UTF-16 units, so a supplementary letter like "𝑥" (U+1D465) would be two surrogates, which are
/// neither letters nor digits. Text containing surrogate pairs is therefore matched on a stand-in
/// string with one BMP character of the same Unicode category per code point, and the match offsets are
/// mapped back.
/// </remarks>
internal sealed class SplitPreTokenizer : PreTokenizer
{
    private readonly AddedTokenMatcher _addedTokens;
    private readonly Regex? _regex;

    public SplitPreTokenizer(AddedTokenMatcher addedTokens, string? pattern)
    {
        _addedTokens = addedTokens;
        _regex = pattern is null ? null : new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) =>
        string.IsNullOrEmpty(text) ? [] : PreTokenize(text.AsSpan());

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text)
    {
        var pieces = new List<(int, int)>(text.Length / 3 + 1);
        _addedTokens.Split(text, (t, o, l) => SplitPlain(t.Slice(o, l), o, pieces), (_, o, l) => pieces.Add((o, l)));
        return pieces;
    }

    private void SplitPlain(ReadOnlySpan<char> text, int offset, List<(int, int)> pieces)
    {
        if (_regex is null)
        {
            pieces.Add((offset, text.Length));
            return;
        }
        if (text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            AddMatches(text, offset, null, pieces);
            return;
        }
        // One stand-in char per code point; starts[i] is where code point i begins in the real text.
        var standIn = new char[text.Length];
        var starts = new int[text.Length + 1];
        int n = 0;
        for (int i = 0; i < text.Length; n++)
        {
            starts[n] = i;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                standIn[n] = StandIn(CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1])));
                i += 2;
            }
            else
            {
                standIn[n] = text[i++];
            }
        }
        starts[n] = text.Length;
        AddMatches(standIn.AsSpan(0, n), offset, starts, pieces);
    }

    private void AddMatches(ReadOnlySpan<char> text, int offset, int[]? starts, List<(int, int)> pieces)
    {
        int last = 0;
        foreach (var m in _regex!.EnumerateMatches(text))
        {
            if (m.Length == 0)
                continue;
            if (m.Index > last)
                Add(last, m.Index);
            Add(m.Index, m.Index + m.Length);
            last = m.Index + m.Length;
        }
        if (last < text.Length)
            Add(last, text.Length);

        void Add(int from, int to)
        {
            int a = starts is null ? from : starts[from];
            int b = starts is null ? to : starts[to];
            pieces.Add((offset + a, b - a));
        }
    }

    /// <summary>A BMP character of the given category that no split regex treats specially.</summary>
    private static char StandIn(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => 'A',
        UnicodeCategory.LowercaseLetter => 'a', // not one of the contraction letters s t r e v m l d
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u00AA',
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '0',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.MathSymbol => '+',
        UnicodeCategory.CurrencySymbol => '$',
        UnicodeCategory.ModifierSymbol => '^',
        UnicodeCategory.OtherSymbol => '\u00A9',
        UnicodeCategory.ConnectorPunctuation => '_',
        UnicodeCategory.DashPunctuation => '-',
        UnicodeCategory.OpenPunctuation => '(',
        UnicodeCategory.ClosePunctuation => ')',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '#',
        UnicodeCategory.Format => '\u00AD',
        UnicodeCategory.PrivateUse => '\uE000',
        _ => '\u0378', // unassigned
    };
}
