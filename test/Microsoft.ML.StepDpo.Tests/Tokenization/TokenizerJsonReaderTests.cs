using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using static Microsoft.ML.StepDpo.Tests.Tokenization.TokenizerFixtures;

namespace Microsoft.ML.StepDpo.Tests.Tokenization;

[TestClass]
public sealed class TokenizerJsonReaderTests
{
    private const string Text = "Step 1: 7×8=56.\n<|endoftext|>";

    /// <summary>Saves a small tokenizer, lets the test edit its JSON, and loads the edited file.</summary>
    private static ByteLevelBpeTokenizer LoadEdited(Action<JsonObject> edit)
    {
        string dir = NewTempDirectory();
        try
        {
            CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet + "×").Save(dir);
            string path = Path.Combine(dir, "tokenizer.json");
            var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            edit(json);
            File.WriteAllText(path, json.ToJsonString());
            return ByteLevelBpeTokenizer.FromFile(path);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void MergesAsStringsOrPairs_GiveTheSameTokenizer()
    {
        var pairs = LoadEdited(_ => { });
        var strings = LoadEdited(json =>
        {
            var merges = json["model"]!["merges"]!.AsArray();
            Assert.IsNotEmpty(merges);
            var asStrings = new JsonArray(merges.Select(m => (JsonNode)JsonValue.Create($"{m![0]} {m[1]}")).ToArray());
            json["model"]!["merges"] = asStrings;
        });
        CollectionAssert.AreEqual(pairs.Encode(Text), strings.Encode(Text));
        Assert.AreEqual(Text.Length - "<|endoftext|>".Length + 1, strings.Encode(Text).Length, "× is merged into one token");
    }

    [TestMethod]
    public void PostProcessorTemplate_AddsBosOnlyWithSpecialTokens()
    {
        var tok = LoadEdited(json =>
        {
            json["post_processor"] = JsonNode.Parse("""
                {"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|pad|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
                 "pair":[{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],
                 "special_tokens":{"<|pad|>":{"id":"<|pad|>","ids":[97],"tokens":["<|pad|>"]}}}
                """);
        });
        int[] with = tok.Encode("12");
        int[] without = tok.Encode("12", addSpecialTokens: false);
        CollectionAssert.AreEqual(new[] { 97 }.Concat(without).ToArray(), with);
    }

    [TestMethod]
    public void UnsupportedFeatures_AreRefusedByName()
    {
        var e1 = Assert.ThrowsExactly<NotSupportedException>(() => LoadEdited(j => j["normalizer"] = JsonNode.Parse("""{"type":"Lowercase"}""")));
        StringAssert.Contains(e1.Message, "Lowercase");
        var e2 = Assert.ThrowsExactly<NotSupportedException>(() => LoadEdited(j => j["model"]!["ignore_merges"] = true));
        StringAssert.Contains(e2.Message, "ignore_merges");
        var e3 = Assert.ThrowsExactly<NotSupportedException>(() => LoadEdited(j => j["model"]!["type"] = "WordPiece"));
        StringAssert.Contains(e3.Message, "WordPiece");
        var e4 = Assert.ThrowsExactly<NotSupportedException>(() => LoadEdited(j => j["added_tokens"]![0]!["lstrip"] = true));
        StringAssert.Contains(e4.Message, "lstrip");
        Assert.ThrowsExactly<NotSupportedException>(() => LoadEdited(j => j["pre_tokenizer"] = null));
    }

    [TestMethod]
    public void MissingOrBrokenFiles_GiveClearErrors()
    {
        Assert.ThrowsExactly<FileNotFoundException>(() => ByteLevelBpeTokenizer.FromFile(Path.Combine(Path.GetTempPath(), "no-such-dir", "tokenizer.json")));
        Assert.ThrowsExactly<DirectoryNotFoundException>(() => ByteLevelBpeTokenizer.FromDirectory(Path.Combine(Path.GetTempPath(), "no-such-dir-" + Guid.NewGuid())));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => LoadEdited(j => ((JsonObject)j["model"]!).Remove("vocab")));
        StringAssert.Contains(e.Message, "vocab");
        var bad = Assert.ThrowsExactly<InvalidDataException>(() => LoadEdited(j => j["model"]!["merges"]![0] = "no-space-here"));
        StringAssert.Contains(bad.Message, "no-space-here");
    }
}
