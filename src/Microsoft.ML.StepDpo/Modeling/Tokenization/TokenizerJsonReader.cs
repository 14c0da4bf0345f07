using System.Text.Json;

namespace Microsoft.ML.StepDpo.Modeling.Tokenization;

/// <summary>
/// Reads a Hugging Face <c>tokenizer.json</c> of the byte-level BPE kind (Qwen2/2.5/3, Llama 3 without
/// <c>ignore_merges</c>, GPT-2 style). Anything it cannot reproduce exactly is refused with a
/// <see cref="NotSupportedException"/> naming the field, rather than silently tokenizing differently.
/// </summary>
internal static class TokenizerJsonReader
{
    /// <summary>GPT-2's split regex, used by a ByteLevel pre-tokenizer with <c>use_regex: true</c>.</summary>
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public static TokenizerDefinition Read(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Tokenizer file '{path}' does not exist.", path);
        using var stream = File.OpenRead(path);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON (empty or truncated?): {e.Message}", e);
        }
        using var _ = doc;
        try
        {
            return Read(doc.RootElement);
        }
        catch (Exception e) when (e is InvalidOperationException or KeyNotFoundException or FormatException)
        {
            throw new InvalidDataException($"'{path}' is not a valid tokenizer.json: {e.Message}", e);
        }
    }

    public static TokenizerDefinition Read(JsonElement root)
    {
        var model = Required(root, "model", "");
        if (model.TryGetProperty("type", out var type) && type.GetString() != "BPE")
            throw new NotSupportedException($"tokenizer.json model type '{type.GetString()}' is not supported; only BPE is.");
        RequireNullOrValue(model, "dropout", v => v.ValueKind == JsonValueKind.Null, "BPE dropout");
        RequireNullOrValue(model, "byte_fallback", v => v.ValueKind == JsonValueKind.False, "byte_fallback");
        RequireNullOrValue(model, "ignore_merges", v => v.ValueKind == JsonValueKind.False, "ignore_merges");
        RequireNullOrValue(model, "continuing_subword_prefix", v => v.ValueKind == JsonValueKind.Null || v.GetString() == "", "continuing_subword_prefix");
        RequireNullOrValue(model, "end_of_word_suffix", v => v.ValueKind == JsonValueKind.Null || v.GetString() == "", "end_of_word_suffix");

        var vocabElement = Required(model, "vocab", "model.");
        var vocab = new Dictionary<string, int>(vocabElement.EnumerateObject().Count(), StringComparer.Ordinal);
        foreach (var p in vocabElement.EnumerateObject())
            vocab.Add(p.Name, p.Value.GetInt32());

        var merges = new List<(string, string)>();
        if (model.TryGetProperty("merges", out var mergesElement) && mergesElement.ValueKind == JsonValueKind.Array)
        {
            merges.Capacity = mergesElement.GetArrayLength();
            foreach (var m in mergesElement.EnumerateArray())
                merges.Add(ReadMerge(m));
        }

        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var addedElement) && addedElement.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in addedElement.EnumerateArray())
            {
                foreach (var flag in new[] { "lstrip", "rstrip", "single_word" })
                    if (a.TryGetProperty(flag, out var f) && f.ValueKind == JsonValueKind.True)
                        throw new NotSupportedException($"Added token '{a.GetProperty("content").GetString()}' has {flag}: true, which is not supported.");
                added.Add(new AddedToken(a.GetProperty("id").GetInt32(), a.GetProperty("content").GetString()!,
                    a.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True));
            }
        }

        string normalizerJson = RawOrNull(root, "normalizer");
        string preTokenizerJson = RawOrNull(root, "pre_tokenizer");
        string postProcessorJson = RawOrNull(root, "post_processor");
        string decoderJson = RawOrNull(root, "decoder");

        bool nfc = root.TryGetProperty("normalizer", out var normalizer) && ReadNormalizer(normalizer);
        string? splitPattern = ReadPreTokenizer(Required(root, "pre_tokenizer", ""));
        var (prefix, suffix) = root.TryGetProperty("post_processor", out var post) ? ReadPostProcessor(post) : ([], []);

        string? unk = model.TryGetProperty("unk_token", out var unkElement) && unkElement.ValueKind == JsonValueKind.String ? unkElement.GetString() : null;
        return new TokenizerDefinition
        {
            Vocabulary = vocab,
            Merges = merges,
            AddedTokens = added,
            SplitPattern = splitPattern,
            Nfc = nfc,
            UnknownToken = unk,
            PrefixIds = prefix,
            SuffixIds = suffix,
            NormalizerJson = normalizerJson,
            PreTokenizerJson = preTokenizerJson,
            PostProcessorJson = postProcessorJson,
            DecoderJson = decoderJson,
        };
    }

    /// <summary>A merge is either "left right" (one space) or ["left", "right"].</summary>
    private static (string, string) ReadMerge(JsonElement m)
    {
        if (m.ValueKind == JsonValueKind.String)
        {
            string s = m.GetString()!;
            int space = s.IndexOf(' ');
            if (space <= 0 || space == s.Length - 1 || s.IndexOf(' ', space + 1) >= 0)
                throw new FormatException($"Merge \"{s}\" is not of the form \"left right\".");
            return (s[..space], s[(space + 1)..]);
        }
        if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
            return (m[0].GetString()!, m[1].GetString()!);
        throw new FormatException($"Merge {m.GetRawText()} is neither \"left right\" nor [\"left\", \"right\"].");
    }

    /// <summary>True for NFC; false for none; anything else is refused.</summary>
    private static bool ReadNormalizer(JsonElement n)
    {
        if (n.ValueKind == JsonValueKind.Null)
            return false;
        string type = n.GetProperty("type").GetString()!;
        if (type == "NFC")
            return true;
        if (type == "Sequence")
        {
            var parts = n.GetProperty("normalizers").EnumerateArray().Select(ReadNormalizer).ToList();
            return parts.Count switch
            {
                0 => false,
                1 => parts[0],
                _ => throw new NotSupportedException("A normalizer Sequence with more than one normalizer is not supported."),
            };
        }
        throw new NotSupportedException($"Normalizer '{type}' is not supported (only NFC or none).");
    }

    /// <summary>Returns the split regex (null: none). Requires byte-level pre-tokenization.</summary>
    private static string? ReadPreTokenizer(JsonElement p)
    {
        if (p.ValueKind == JsonValueKind.Null)
            throw new NotSupportedException("A tokenizer.json without a ByteLevel pre-tokenizer is not supported (only byte-level BPE is).");
        var steps = p.GetProperty("type").GetString() == "Sequence"
            ? p.GetProperty("pretokenizers").EnumerateArray().ToList()
            : [p];
        string? pattern = null;
        bool byteLevel = false;
        foreach (var step in steps)
        {
            string type = step.GetProperty("type").GetString()!;
            if (type == "Split" && !byteLevel && pattern is null)
            {
                if (step.GetProperty("behavior").GetString() != "Isolated" || (step.TryGetProperty("invert", out var inv) && inv.ValueKind == JsonValueKind.True))
                    throw new NotSupportedException("Only the Split pre-tokenizer with behavior Isolated and invert false is supported.");
                var pat = step.GetProperty("pattern");
                pattern = pat.TryGetProperty("Regex", out var rx) ? rx.GetString()!
                    : System.Text.RegularExpressions.Regex.Escape(pat.GetProperty("String").GetString()!);
            }
            else if (type == "ByteLevel" && !byteLevel)
            {
                byteLevel = true;
                if (step.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.True)
                    throw new NotSupportedException("ByteLevel add_prefix_space: true is not supported.");
                bool useRegex = !step.TryGetProperty("use_regex", out var ur) || ur.ValueKind == JsonValueKind.True;
                if (useRegex)
                {
                    if (pattern is not null)
                        throw new NotSupportedException("A Split pre-tokenizer followed by ByteLevel with use_regex: true is not supported.");
                    pattern = Gpt2Pattern;
                }
            }
            else
            {
                throw new NotSupportedException($"Pre-tokenizer step '{type}' in this position is not supported (supported: [Split(Isolated)], ByteLevel).");
            }
        }
        if (!byteLevel)
            throw new NotSupportedException("A tokenizer.json without a ByteLevel pre-tokenizer is not supported (only byte-level BPE is).");
        return pattern;
    }

    /// <summary>Ids a TemplateProcessing post-processor puts around a single sequence; ByteLevel adds none.</summary>
    private static (int[] Prefix, int[] Suffix) ReadPostProcessor(JsonElement p)
    {
        if (p.ValueKind == JsonValueKind.Null)
            return ([], []);
        string type = p.GetProperty("type").GetString()!;
        switch (type)
        {
            case "ByteLevel":
                return ([], []);
            case "Sequence":
                var results = p.GetProperty("processors").EnumerateArray().Select(ReadPostProcessor).Where(r => r.Prefix.Length + r.Suffix.Length > 0).ToList();
                if (results.Count > 1)
                    throw new NotSupportedException("More than one post-processor adding tokens is not supported.");
                return results.Count == 1 ? results[0] : ([], []);
            case "TemplateProcessing":
                var specials = p.GetProperty("special_tokens");
                var prefix = new List<int>();
                var suffix = new List<int>();
                bool seenSequence = false;
                foreach (var piece in p.GetProperty("single").EnumerateArray())
                {
                    if (piece.TryGetProperty("Sequence", out _))
                    {
                        seenSequence = true;
                        continue;
                    }
                    string id = piece.GetProperty("SpecialToken").GetProperty("id").GetString()!;
                    var ids = specials.GetProperty(id).GetProperty("ids").EnumerateArray().Select(e => e.GetInt32());
                    (seenSequence ? suffix : prefix).AddRange(ids);
                }
                return (prefix.ToArray(), suffix.ToArray());
            default:
                throw new NotSupportedException($"Post-processor '{type}' is not supported.");
        }
    }

    private static JsonElement Required(JsonElement obj, string name, string parent) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var v) ? v
            : throw new InvalidOperationException($"'{parent}{name}' is missing.");

    private static void RequireNullOrValue(JsonElement obj, string name, Func<JsonElement, bool> ok, string what)
    {
        if (obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null && !ok(v))
            throw new NotSupportedException($"tokenizer.json model.{name} = {v.GetRawText()} is not supported ({what}).");
    }

    private static string RawOrNull(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) ? v.GetRawText() : "null";
}
