using Microsoft.ML.StepDpo.Modeling.Tokenization;
using static Microsoft.ML.StepDpo.Tests.Tokenization.TokenizerFixtures;

namespace Microsoft.ML.StepDpo.Tests.Tokenization;

[TestClass]
public sealed class CharacterTokenizerTests
{
    // ASCII plus characters of 2, 3 and 4 UTF-8 bytes, which need merges to stay one token each.
    private static readonly string Alphabet = CharacterTokenizer.AsciiAlphabet + "×÷−π𝑥";

    private static readonly string[] Lines =
    [
        "Mia has 12 books. Mia buys 6 boxes of 9. How many books now?",
        "Step 1: 6*9=54.\nStep 2: 12+54=66.\nThe answer is 66.",
        "Step 1: 7×8=56.\nStep 2: 56÷2=28.\nStep 3: 28−π=24.86 and 𝑥=3.",
        "   spaces  and\ttabs\n\nnewlines",
        "Step 1: 1+1=2.<|endoftext|>",
    ];

    [TestMethod]
    public void EachCharacterIsOneToken_DigitsToo()
    {
        var tok = CharacterTokenizer.Create(Alphabet);
        foreach (string line in Lines.Take(4))
        {
            int[] ids = tok.Encode(line);
            var runes = line.EnumerateRunes().Select(r => r.ToString()).ToArray();
            Assert.HasCount(runes.Length, ids, line);
            for (int i = 0; i < runes.Length; i++)
                Assert.AreEqual(tok.Encode(runes[i]).Single(), ids[i], $"'{runes[i]}' in {line}");
            Assert.AreEqual(line, tok.Decode(ids));
        }
        CollectionAssert.AreEqual(new[] { "1", "2", "3", "4", "5" }.Select(d => tok.Encode(d).Single()).ToArray(), tok.Encode("12345"));
    }

    [TestMethod]
    public void EosAndPad_AreSpecialTokensAfterTheCharacters()
    {
        var tok = CharacterTokenizer.Create(Alphabet);
        Assert.AreEqual(tok.TokenToId("<|endoftext|>"), tok.EosId);
        Assert.AreEqual(tok.TokenToId(CharacterTokenizer.PadToken), tok.PadId);
        Assert.AreEqual(tok.VocabularySize - 2, tok.EosId);
        Assert.AreEqual(tok.VocabularySize - 1, tok.PadId);
        Assert.IsTrue(tok.IsSpecial(tok.EosId!.Value));
        int[] ids = tok.Encode(Lines[4]);
        Assert.AreEqual(tok.EosId, ids[^1]);
        Assert.AreEqual(Lines[4], tok.Decode(ids));
        Assert.AreEqual("Step 1: 1+1=2.", tok.Decode(ids, skipSpecialTokens: true));
        // Not recognised, the EOS text is plain characters.
        Assert.HasCount(Lines[4].Length, tok.Encode(Lines[4], recognizeSpecialTokens: false));
    }

    [TestMethod]
    public void CharactersOutsideTheAlphabet_AreDroppedLikeHuggingFace()
    {
        var tok = CharacterTokenizer.Create("0123456789+=");
        Assert.AreEqual("1+2=3", tok.Decode(tok.Encode("1 + 2 = 3!")));
    }

    [TestMethod]
    public void Saved_LoadsInHuggingFaceAndBackHere_WithTheSameIds()
    {
        var tok = CharacterTokenizer.Create(Alphabet);
        string dir = NewTempDirectory();
        try
        {
            tok.Save(dir);
            var reloaded = ByteLevelBpeTokenizer.FromDirectory(dir);
            using var oracle = new global::Tokenizers.DotNet.Tokenizer(Path.Combine(dir, "tokenizer.json"));
            Assert.AreEqual(tok.EosId, reloaded.EosId);
            Assert.AreEqual(tok.PadId, reloaded.PadId);
            Assert.AreEqual(tok.VocabularySize, reloaded.VocabularySize);
            // "é" has no token; "≈" (E2 89 88) shares two of its three UTF-8 bytes with "−" (E2 88 92): both as in Hugging Face.
            foreach (string line in Lines.Append("1 + 2 = 3! é ≈"))
            {
                int[] ids = tok.Encode(line);
                CollectionAssert.AreEqual(ids, reloaded.Encode(line), line);
                CollectionAssert.AreEqual(ids, OracleEncode(oracle, line), line);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
