namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// The minimum the model side needs from a tokenizer (generation, the generate command). Tokenizers
/// (e.g. the tokenizer.json-backed BPE) provide an adapter to this interface.
/// </summary>
internal interface ITextTokenizer
{
    /// <summary>Token ids of <paramref name="text"/> (special tokens in the text recognised).</summary>
    int[] Encode(string text);

    /// <summary>The text of <paramref name="ids"/>.</summary>
    string Decode(ReadOnlySpan<int> ids);

    /// <summary>The end-of-sequence id, if the tokenizer has one.</summary>
    int? EosId { get; }
}
