using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

/// <summary>
/// A model folder with implausible or broken files is refused before any tensor is allocated, with a message that
/// names the file: sizes out of range, a config whose weights exceed the memory, empty or truncated JSON, and a
/// tokenizer whose ids do not fit the model's embedding.
/// </summary>
[TestClass]
public sealed class ModelFolderFaultTests
{
    private string dir = "";

    [TestInitialize]
    public void Init() => dir = Directory.CreateTempSubdirectory("stepdpo-folder-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(dir, recursive: true);

    private string WriteConfig(Action<JsonObject> edit)
    {
        var j = Qwen2Config.Qwen2_0_5B().ToJson();
        edit(j);
        string path = Path.Combine(dir, "config.json");
        File.WriteAllText(path, j.ToJsonString());
        return path;
    }

    [TestMethod]
    [DataRow("num_hidden_layers", 1_000_000)]
    [DataRow("hidden_size", 10_000_000)]
    [DataRow("vocab_size", 1_000_000_000)]
    [DataRow("intermediate_size", 2_000_000_000)]
    [DataRow("num_hidden_layers", -3)]
    [DataRow("num_attention_heads", 0)]
    [DataRow("max_position_embeddings", -1)]
    [DataRow("head_dim", 100_000)]
    public void AnImplausibleSizeIsRefusedNamingTheFileAndTheField(string field, int value)
    {
        string path = WriteConfig(j => j[field] = value);
        var e = Assert.Throws<InvalidDataException>(() => ModelCheckpoint.Load(dir));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, field);
    }

    [TestMethod]
    public void HeadsThatDoNotDivideTheHiddenSizeAreRefused()
    {
        string path = WriteConfig(j => { j["num_attention_heads"] = 13; j["num_key_value_heads"] = 1; });
        var e = Assert.Throws<InvalidDataException>(() => ModelCheckpoint.Load(dir));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "multiple of num_attention_heads");
    }

    [TestMethod]
    public void AConfigWhoseWeightsExceedTheMemoryIsRefusedBeforeAllocation()
    {
        // Every size within range, but 1,000 layers of a 16k-wide model: about 3.8 trillion bytes.
        string path = WriteConfig(j =>
        {
            j["num_hidden_layers"] = 1000; j["hidden_size"] = 16384; j["intermediate_size"] = 65536;
            j["num_attention_heads"] = 128; j["num_key_value_heads"] = 8;
        });
        var config = Qwen2Config.Load(path);
        Assert.IsGreaterThan(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2, config.ParameterCount);
        var e = Assert.Throws<InsufficientMemoryException>(() => ModelCheckpoint.Load(dir));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, config.ParameterCount.ToString("N0"));
        StringAssert.Contains(e.Message, "GiB");
        Assert.Throws<InsufficientMemoryException>(() => new Qwen2ForCausalLM(config));
    }

    [TestMethod]
    public void TheParameterCountIsThatOfTheModel()
    {
        foreach (var tied in new[] { true, false })
        {
            var config = Qwen2Config.Tiny(tied: tied);
            using var model = Qwen2ForCausalLM.CreateRandom(config, seed: 1);
            Assert.AreEqual(model.parameters().Sum(p => p.numel()), config.ParameterCount);
        }
    }

    [TestMethod]
    [DataRow("")]
    [DataRow("{\"model_type\": \"qwen2\", \"vocab_si")]
    [DataRow("[1, 2]")]
    public void AnEmptyOrTruncatedConfigNamesTheFile(string text)
    {
        string path = Path.Combine(dir, "config.json");
        File.WriteAllText(path, text);
        var e = Assert.Throws<InvalidDataException>(() => ModelCheckpoint.Load(dir));
        StringAssert.Contains(e.Message, path);
    }

    [TestMethod]
    [DataRow("tokenizer.json", "")]
    [DataRow("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0")]
    [DataRow("tokenizer_config.json", "")]
    [DataRow("tokenizer_config.json", "{\"eos_token\": ")]
    public void AnEmptyOrTruncatedTokenizerFileNamesTheFile(string file, string text)
    {
        CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet).Save(dir);
        string path = Path.Combine(dir, file);
        File.WriteAllText(path, text);
        var e = Assert.Throws<InvalidDataException>(() => ByteLevelBpeTokenizer.FromDirectory(dir));
        StringAssert.Contains(e.Message, path);
    }

    [TestMethod]
    public void AnEmptyAdapterConfigNamesTheFile()
    {
        using var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(), seed: 1);
        string path = Path.Combine(dir, LoraAdapters.ConfigFile);
        File.WriteAllText(path, "");
        var e = Assert.Throws<InvalidDataException>(() => LoraAdapters.Load(model, dir));
        StringAssert.Contains(e.Message, path);
        File.WriteAllText(path, "{\"peft_type\": \"LORA\", \"target_modules\": [\"q_proj\"]}");
        e = Assert.Throws<InvalidDataException>(() => LoraAdapters.Load(model, dir));
        StringAssert.Contains(e.Message, path);
    }

    [TestMethod]
    public void ATokenizerWithIdsBeyondTheEmbeddingIsRefusedNamingBothFiles()
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        // The embedding has 10 rows fewer than the tokenizer has ids.
        using var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: tok.VocabularySize - 10), seed: 1);
        ModelCheckpoint.Save(model, dir);
        tok.Save(dir);
        var e = Assert.Throws<InvalidDataException>(() => ModelFolder.Load(dir));
        StringAssert.Contains(e.Message, Path.Combine(dir, "tokenizer.json"));
        StringAssert.Contains(e.Message, Path.Combine(dir, "config.json"));
        StringAssert.Contains(e.Message, $"{tok.VocabularySize - 10}..{tok.VocabularySize - 1}");
    }
}
