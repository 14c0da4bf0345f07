using System.Text;
using Microsoft.ML.Tokenizers;

namespace Microsoft.ML.StepDpo.Modeling.Tokenization;

/// <summary>
/// NFC, applied like Hugging Face: added tokens are cut out of the raw text first and only the text
/// between them is normalized (so, e.g., "&lt;|im_end|&gt;" followed by U+0338 keeps its "&gt;" instead of
/// composing to "≯"). Lone surrogates, which cannot reach the Rust tokenizer as UTF-8, become U+FFFD.
/// </summary>
internal sealed class SegmentNfcNormalizer : Normalizer
{
    private readonly AddedTokenMatcher _addedTokens;

    public SegmentNfcNormalizer(AddedTokenMatcher addedTokens) => _addedTokens = addedTokens;

    public override string Normalize(string original) => NormalizeCore(original);

    public override string Normalize(ReadOnlySpan<char> original) => NormalizeCore(original.ToString());

    private string NormalizeCore(string text)
    {
        text = ReplaceLoneSurrogates(text);
        if (text.IsNormalized(NormalizationForm.FormC))
            return text; // every slice of an NFC string is NFC: nothing to do segment by segment
        var sb = new StringBuilder(text.Length);
        _addedTokens.Split(text,
            (t, o, l) => sb.Append(t.Slice(o, l).ToString().Normalize(NormalizationForm.FormC)),
            (t, o, l) => sb.Append(t.Slice(o, l)));
        return sb.ToString();
    }

    internal static string ReplaceLoneSurrogates(string text)
    {
        int first = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (first < 0)
            return text;
        char[]? copy = null;
        for (int i = first; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }
            if (char.IsSurrogate(c))
            {
                copy ??= text.ToCharArray();
                copy[i] = '\uFFFD';
            }
        }
        return copy is null ? text : new string(copy);
    }
}
