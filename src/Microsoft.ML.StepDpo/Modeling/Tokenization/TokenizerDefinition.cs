namespace Microsoft.ML.StepDpo.Modeling.Tokenization;

/// <summary>A token added on top of the BPE vocabulary (Hugging Face <c>added_tokens</c>).</summary>
/// <param name="Id">Its id.</param>
/// <param name="Content">Its text; always matched as a whole, before the pre-tokenizer runs.</param>
/// <param name="Special">Whether it is special (skipped by decode with skip-special, not split by the
/// "do not recognise special tokens" mode).</param>
internal sealed record AddedToken(int Id, string Content, bool Special);

/// <summary>
/// The parts of a Hugging Face <c>tokenizer.json</c> (byte-level BPE) this project interprets, plus the
/// raw JSON of the parts it only passes through, so that a saved file loads in Hugging Face as well.
/// </summary>
internal sealed class TokenizerDefinition
{
    /// <summary>The BPE model vocabulary (token in byte-level form, id); added tokens are not in it.</summary>
    public required Dictionary<string, int> Vocabulary { get; init; }

    /// <summary>The merges, by rank.</summary>
    public required List<(string Left, string Right)> Merges { get; init; }

    /// <summary>The added tokens (special and not).</summary>
    public required List<AddedToken> AddedTokens { get; init; }

    /// <summary>The pre-tokenizer split regex (Rust regex syntax, Isolated behaviour); null: no split.</summary>
    public string? SplitPattern { get; init; }

    /// <summary>Whether the normalizer is NFC (the only one supported; false: none).</summary>
    public bool Nfc { get; init; }

    /// <summary>The BPE unknown token, or null.</summary>
    public string? UnknownToken { get; init; }

    /// <summary>Ids the post-processor puts before the text when special tokens are added (e.g. a BOS).</summary>
    public int[] PrefixIds { get; init; } = [];

    /// <summary>Ids the post-processor puts after the text when special tokens are added.</summary>
    public int[] SuffixIds { get; init; } = [];

    /// <summary>Raw JSON of <c>normalizer</c>, <c>pre_tokenizer</c>, <c>post_processor</c>, <c>decoder</c> ("null" when absent).</summary>
    public required string NormalizerJson { get; init; }

    /// <inheritdoc cref="NormalizerJson"/>
    public required string PreTokenizerJson { get; init; }

    /// <inheritdoc cref="NormalizerJson"/>
    public required string PostProcessorJson { get; init; }

    /// <inheritdoc cref="NormalizerJson"/>
    public required string DecoderJson { get; init; }
}
