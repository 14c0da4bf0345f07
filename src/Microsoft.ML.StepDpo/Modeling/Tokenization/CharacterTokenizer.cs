using System.Text;

namespace Microsoft.ML.StepDpo.Modeling.Tokenization;

/// <summary>
/// A character-level tokenizer for the built-in arithmetic task, in the same byte-level BPE form as the
/// real ones (so it saves as a tokenizer.json that Hugging Face loads): one token per character of the
/// alphabet (each digit its own token), plus <see cref="ByteLevelBpeTokenizer.DefaultEosToken"/> as EOS and
/// <see cref="PadToken"/> as padding.
/// </summary>
/// <remarks>
/// Vocabulary: each character's UTF-8 bytes in byte-level form; a multi-byte character also gets merges
/// that join its bytes (and the intermediate tokens a BPE needs), so it is still one token. No merge joins
/// two characters, and the pre-tokenizer does not split, so the text is one BPE word. Characters outside
/// the alphabet have no token and are dropped, exactly as Hugging Face drops them (no unknown token).
/// </remarks>
internal static class CharacterTokenizer
{
    public const string PadToken = "<|pad|>";

    private const string ByteLevelJson = """{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}""";

    public static ByteLevelBpeTokenizer Create(string alphabet)
    {
        ArgumentException.ThrowIfNullOrEmpty(alphabet);
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var merges = new List<(string, string)>();
        var mergeSet = new HashSet<(string, string)>();
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var rune in alphabet.EnumerateRunes())
        {
            int n = rune.EncodeToUtf8(utf8);
            string previous = Add(ByteLevelAlphabet.Map(utf8[0..1]));
            for (int k = 2; k <= n; k++)
            {
                string next = Add(ByteLevelAlphabet.Map(utf8[(k - 1)..k]));
                string joined = Add(ByteLevelAlphabet.Map(utf8[..k]));
                if (mergeSet.Add((previous, next)))
                    merges.Add((previous, next));
                previous = joined;
            }
        }
        var added = new List<AddedToken>
        {
            new(vocab.Count, ByteLevelBpeTokenizer.DefaultEosToken, Special: true),
            new(vocab.Count + 1, PadToken, Special: true),
        };
        var definition = new TokenizerDefinition
        {
            Vocabulary = vocab,
            Merges = merges,
            AddedTokens = added,
            SplitPattern = null,
            Nfc = false,
            NormalizerJson = "null",
            PreTokenizerJson = ByteLevelJson,
            PostProcessorJson = ByteLevelJson,
            DecoderJson = ByteLevelJson,
        };
        return ByteLevelBpeTokenizer.FromDefinition(definition,
            new TokenizerConfig { EosToken = ByteLevelBpeTokenizer.DefaultEosToken, PadToken = PadToken });

        string Add(string token)
        {
            vocab.TryAdd(token, vocab.Count);
            return token;
        }
    }

    /// <summary>Printable ASCII plus tab and newline: enough for the arithmetic task's prompts and step answers.</summary>
    public static string AsciiAlphabet { get; } = "\t\n" + new string(Enumerable.Range(' ', '~' - ' ' + 1).Select(c => (char)c).ToArray());
}
