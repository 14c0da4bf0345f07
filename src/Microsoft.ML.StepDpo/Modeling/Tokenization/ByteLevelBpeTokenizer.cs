using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace Microsoft.ML.StepDpo.Modeling.Tokenization;

/// <summary>
/// A Hugging Face byte-level BPE tokenizer (<c>tokenizer.json</c> of Qwen2, Qwen2.5, Qwen3, GPT-2 style
/// models) running on Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>, with the same ids as the
/// Hugging Face tokenizers library.
/// </summary>
/// <remarks>
/// Load it with <see cref="FromDirectory"/> from a model folder or <see cref="FromFile"/> from a
/// <c>tokenizer.json</c>. Files using features this class cannot reproduce exactly (another model type,
/// normalizers other than NFC, <c>ignore_merges</c>, lstrip/rstrip added tokens…) are refused with a
/// <see cref="NotSupportedException"/>.
/// </remarks>
public sealed class ByteLevelBpeTokenizer : ITextTokenizer
{
    private readonly TokenizerDefinition _definition;
    private readonly BpeTokenizer _bpe;
    private readonly HashSet<int> _specialIds;
    private readonly Dictionary<string, int> _addedIds;
    private readonly Lazy<BpeTokenizer> _bpeWithoutSpecials;

    private ByteLevelBpeTokenizer(TokenizerDefinition definition, TokenizerConfig config)
    {
        _definition = definition;
        _addedIds = definition.AddedTokens.ToDictionary(t => t.Content, t => t.Id, StringComparer.Ordinal);
        _specialIds = definition.AddedTokens.Where(t => t.Special).Select(t => t.Id).ToHashSet();
        _bpe = CreateBpe(definition, definition.AddedTokens);
        _bpeWithoutSpecials = new Lazy<BpeTokenizer>(() => CreateBpe(definition, definition.AddedTokens.Where(t => !t.Special).ToList()));
        Config = config;
        EosId = config.EosToken is string eos ? RequireId(eos, "eos_token")
            : _addedIds.TryGetValue(DefaultEosToken, out int id) ? id : null;
        PadId = config.PadToken is string pad ? RequireId(pad, "pad_token") : null;
        VocabularySize = Math.Max(definition.Vocabulary.Values.DefaultIfEmpty(-1).Max(), definition.AddedTokens.Select(t => t.Id).DefaultIfEmpty(-1).Max()) + 1;
    }

    /// <summary>The end-of-sequence token used when no <c>tokenizer_config.json</c> names one.</summary>
    public const string DefaultEosToken = "<|endoftext|>";

    /// <summary>
    /// The end-of-sequence id: the <c>eos_token</c> of the <c>tokenizer_config.json</c> beside the
    /// <c>tokenizer.json</c> when there is one (Qwen2.5 instruct models: <c>&lt;|im_end|&gt;</c>), otherwise
    /// <see cref="DefaultEosToken"/> (151643 in Qwen) if it is an added token, otherwise null.
    /// </summary>
    public int? EosId { get; }

    /// <summary>The padding id: the <c>pad_token</c> of <c>tokenizer_config.json</c>, or null.</summary>
    public int? PadId { get; }

    /// <summary>One more than the largest id (BPE vocabulary and added tokens).</summary>
    public int VocabularySize { get; }

    /// <summary>The underlying Microsoft.ML.Tokenizers tokenizer (all added tokens recognised), for use in ML.NET text pipelines.</summary>
    public Tokenizer Tokenizer => _bpe;

    internal TokenizerDefinition Definition => _definition;

    internal TokenizerConfig Config { get; }

    /// <summary>Loads <c>tokenizer.json</c> (and <c>tokenizer_config.json</c> when present) from a model folder.</summary>
    /// <param name="directory">A Hugging Face model or tokenizer folder.</param>
    public static ByteLevelBpeTokenizer FromDirectory(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Tokenizer folder '{directory}' does not exist.");
        string path = Path.Combine(directory, "tokenizer.json");
        if (!File.Exists(path))
            throw new FileNotFoundException($"'{directory}' has no tokenizer.json (only the fast-tokenizer file format is supported).", path);
        return FromFile(path);
    }

    /// <summary>Loads a <c>tokenizer.json</c>; a <c>tokenizer_config.json</c> in the same folder supplies EOS and pad tokens.</summary>
    /// <param name="path">Path of the <c>tokenizer.json</c> file.</param>
    public static ByteLevelBpeTokenizer FromFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var definition = TokenizerJsonReader.Read(path);
        string configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "tokenizer_config.json");
        return new ByteLevelBpeTokenizer(definition, TokenizerConfig.ReadOrDefault(configPath));
    }

    internal static ByteLevelBpeTokenizer FromDefinition(TokenizerDefinition definition, TokenizerConfig config) => new(definition, config);

    /// <summary>Encodes text to ids, as Hugging Face's <c>tokenizer(text)</c> does.</summary>
    /// <param name="text">The text.</param>
    /// <param name="addSpecialTokens">Add the tokens the post-processor puts around a sequence (e.g. a BOS); Qwen adds none.</param>
    /// <param name="recognizeSpecialTokens">Map special-token text such as "&lt;|im_start|&gt;" to its id (default);
    /// when false it is tokenized as plain text (Hugging Face's <c>split_special_tokens=True</c>). Non-special added tokens are always recognised.</param>
    public int[] Encode(string text, bool addSpecialTokens = true, bool recognizeSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var bpe = recognizeSpecialTokens ? _bpe : _bpeWithoutSpecials.Value;
        var ids = bpe.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true);
        if (!addSpecialTokens || (_definition.PrefixIds.Length == 0 && _definition.SuffixIds.Length == 0))
            return ids is List<int> list ? list.ToArray() : ids.ToArray();
        return [.. _definition.PrefixIds, .. ids, .. _definition.SuffixIds];
    }

    /// <summary>Decodes ids to text, as Hugging Face's <c>tokenizer.decode</c> does; unknown ids are ignored.</summary>
    /// <param name="ids">The ids.</param>
    /// <param name="skipSpecialTokens">Leave out special tokens (non-special added tokens such as "&lt;think&gt;" stay).</param>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return _bpe.Decode(skipSpecialTokens ? ids.Where(id => !_specialIds.Contains(id)) : ids, considerSpecialTokens: true);
    }

    /// <summary>The id of a token (an added token's text or a vocabulary entry in byte-level form), or null.</summary>
    public int? TokenToId(string token) =>
        _addedIds.TryGetValue(token, out int id) ? id : _definition.Vocabulary.TryGetValue(token, out id) ? id : null;

    /// <summary>Whether an id is a special added token.</summary>
    public bool IsSpecial(int id) => _specialIds.Contains(id);

    /// <summary>Writes <c>tokenizer.json</c> and <c>tokenizer_config.json</c> into a folder (created if needed), loadable by Hugging Face.</summary>
    /// <param name="directory">The folder.</param>
    public void Save(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        Directory.CreateDirectory(directory);
        TokenizerJsonWriter.Write(_definition, Path.Combine(directory, "tokenizer.json"));
        Config.Write(Path.Combine(directory, "tokenizer_config.json"), EosId is int e ? IdToAddedToken(e) : null);
    }

    int[] ITextTokenizer.Encode(string text) => Encode(text);

    string ITextTokenizer.Decode(ReadOnlySpan<int> ids) => Decode(ids.ToArray());

    private string? IdToAddedToken(int id) => _definition.AddedTokens.FirstOrDefault(t => t.Id == id)?.Content;

    private int RequireId(string token, string what) =>
        TokenToId(token) ?? throw new InvalidDataException($"tokenizer_config.json {what} '{token}' is not a token of tokenizer.json.");

    private static BpeTokenizer CreateBpe(TokenizerDefinition def, IReadOnlyList<AddedToken> recognised)
    {
        var matcher = new AddedTokenMatcher(recognised.Select(t => t.Content));
        var merges = new List<string>(def.Merges.Count);
        foreach (var (left, right) in def.Merges)
        {
            // BpeOptions takes "left right" strings; byte-level tokens never contain a space (it is "Ġ").
            if (left.Contains(' ') || right.Contains(' '))
                throw new NotSupportedException($"Merge [\"{left}\", \"{right}\"] contains a space, which a byte-level BPE cannot have.");
            merges.Add(string.Concat(left, " ", right));
        }
        return BpeTokenizer.Create(new BpeOptions(def.Vocabulary)
        {
            Merges = merges,
            ByteLevel = true,
            UnknownToken = def.UnknownToken,
            SpecialTokens = recognised.Count == 0 ? null : recognised.ToDictionary(t => t.Content, t => t.Id, StringComparer.Ordinal),
            PreTokenizer = new SplitPreTokenizer(matcher, def.SplitPattern),
            Normalizer = def.Nfc ? new SegmentNfcNormalizer(matcher) : null,
        });
    }
}
