using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Tests.Modeling.ModelTestUtil;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

[TestClass]
public sealed class CheckpointTests
{
    [ClassInitialize]
    public static void ClassInit(TestContext _) => SingleThread.Enter();

    [ClassCleanup]
    public static void ClassDone() => SingleThread.Exit();

    private string dir = "";

    [TestInitialize]
    public void Init() => dir = Directory.CreateTempSubdirectory("stepdpo-ckpt-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(dir, recursive: true);

    [TestMethod]
    [DataRow("float32", false, true)]
    [DataRow("float32", true, false)]
    [DataRow("bfloat16", false, false)]
    [DataRow("bfloat16", true, true)]
    public void SaveLoadRoundTripIsExact(string dtypeName, bool sharded, bool tied)
    {
        using var scope = torch.NewDisposeScope();
        var dtype = Qwen2Config.ParseDtype(dtypeName);
        var config = Qwen2Config.Tiny(tied: tied) with { EosTokenId = 3 };
        using var model = Qwen2ForCausalLM.CreateRandom(config, dtype, seed: 9);
        var tok = Path.Combine(dir, "tokenizer.json");
        File.WriteAllText(tok, "{\"model\":{}}");
        var outDir = Path.Combine(dir, "out");
        ModelCheckpoint.Save(model, outDir, maxShardBytes: sharded ? 8_000 : null, tokenizerFiles: new[] { tok });

        Assert.IsTrue(File.Exists(Path.Combine(outDir, "tokenizer.json")));
        Assert.AreEqual(sharded, File.Exists(Path.Combine(outDir, ModelCheckpoint.IndexFile)));
        Assert.AreEqual(!sharded, File.Exists(Path.Combine(outDir, ModelCheckpoint.SingleFile)));
        if (sharded) Assert.IsGreaterThan(2, Directory.GetFiles(outDir, "model-*-of-*.safetensors").Length);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "config.json")))!;
        Assert.AreEqual(dtypeName, cfg["torch_dtype"]!.GetValue<string>());
        Assert.AreEqual("Qwen2ForCausalLM", cfg["architectures"]![0]!.GetValue<string>());
        Assert.AreEqual(tied, cfg["tie_word_embeddings"]!.GetValue<bool>());

        using var loaded = ModelCheckpoint.Load(outDir);
        Assert.AreEqual(dtype, loaded.DType);
        Assert.AreEqual(config with { TorchDtype = dtypeName }, loaded.Config);
        var a = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in loaded.named_parameters())
            Assert.IsTrue(p.equal(a[name]).all().item<bool>(), name);
        Assert.AreEqual(a.Count, loaded.named_parameters().Count());
        var ids = torch.tensor(new long[] { 1, 5, 9, 2 }).unsqueeze(0);
        Assert.AreEqual(0.0, MaxAbsDiff(model.Forward(ids), loaded.Forward(ids)));
    }

    [TestMethod]
    public void LoadsStoredBf16AndFp16IntoAnotherDtype()
    {
        using var scope = torch.NewDisposeScope();
        foreach (var stored in new[] { ScalarType.BFloat16, ScalarType.Float16 })
        {
            using var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(), stored, seed: 2);
            var d = Path.Combine(dir, stored.ToString());
            ModelCheckpoint.Save(model, d);
            using var f32 = ModelCheckpoint.Load(d, ScalarType.Float32);
            Assert.AreEqual(ScalarType.Float32, f32.DType);
            var w = model.Model.Embedding.Weight.to(ScalarType.Float32);
            Assert.IsTrue(f32.Model.Embedding.Weight.equal(w).all().item<bool>());
        }
    }

    [TestMethod]
    public void ReadsAHandWrittenSafetensorsFile()
    {
        // Written byte by byte from the format definition, independent of our writer.
        var header = Encoding.UTF8.GetBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]},\"__metadata__\":{\"format\":\"pt\"}}");
        var bytes = new List<byte>();
        var len = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, header.Length);
        bytes.AddRange(len); bytes.AddRange(header);
        foreach (var f in new[] { 1f, -2f, 3.5f, 0.25f }) bytes.AddRange(BitConverter.GetBytes(f));
        foreach (var f in new[] { 1f, -0.5f, 256f }) bytes.AddRange(BitConverter.GetBytes(f).Skip(2));   // bf16 = high half of fp32
        var path = Path.Combine(dir, "x.safetensors");
        File.WriteAllBytes(path, bytes.ToArray());

        using var r = new SafeTensors.Reader(path);
        using var a = r.Read("a");
        using var b = r.Read("b");
        CollectionAssert.AreEqual(new long[] { 2, 2 }, a.shape);
        CollectionAssert.AreEqual(new[] { 1f, -2f, 3.5f, 0.25f }, a.data<float>().ToArray());
        Assert.AreEqual(ScalarType.BFloat16, b.dtype);
        CollectionAssert.AreEqual(new[] { 1f, -0.5f, 256f }, b.to(ScalarType.Float32).data<float>().ToArray());

        // And our writer produces the same layout: aligned header, then the raw bytes.
        var path2 = Path.Combine(dir, "y.safetensors");
        SafeTensors.Write(path2, new[] { ("a", a), ("b", b) });
        var written = File.ReadAllBytes(path2);
        long n = BinaryPrimitives.ReadInt64LittleEndian(written);
        Assert.AreEqual(0, n % 8);
        var json = JsonNode.Parse(Encoding.UTF8.GetString(written, 8, (int)n))!;
        Assert.AreEqual("BF16", json["b"]!["dtype"]!.GetValue<string>());
        CollectionAssert.AreEqual(bytes.Skip(8 + header.Length).ToArray(), written.Skip(8 + (int)n).ToArray());
    }

    [TestMethod]
    public void ReportsMissingUnexpectedAndMisshapedTensors()
    {
        using var scope = torch.NewDisposeScope();
        using var model = Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(), ScalarType.Float32, seed: 1);
        ModelCheckpoint.Save(model, dir);
        var file = Path.Combine(dir, ModelCheckpoint.SingleFile);
        var tensors = model.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).ToList();

        SafeTensors.Write(file, tensors.Where(t => t.name != "model.norm.weight"));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelCheckpoint.Load(dir));
        StringAssert.Contains(e.Message, "missing tensor 'model.norm.weight'");

        SafeTensors.Write(file, tensors.Append(("model.layers.0.extra.weight", torch.zeros(2))));
        e = Assert.ThrowsExactly<InvalidDataException>(() => ModelCheckpoint.Load(dir));
        StringAssert.Contains(e.Message, "unexpected tensor 'model.layers.0.extra.weight'");

        SafeTensors.Write(file, tensors.Select(t => t.name == "model.layers.1.mlp.up_proj.weight" ? (t.name, torch.zeros(3, 3)) : t));
        e = Assert.ThrowsExactly<InvalidDataException>(() => ModelCheckpoint.Load(dir));
        StringAssert.Contains(e.Message, "'model.layers.1.mlp.up_proj.weight' has shape [3, 3] in the checkpoint but [64, 32] in the model");

        File.Delete(file);
        Assert.ThrowsExactly<FileNotFoundException>(() => ModelCheckpoint.Load(dir));
    }

    [TestMethod]
    public void ReadsAHuggingFaceStyleConfig()
    {
        var path = Path.Combine(dir, "config.json");
        File.WriteAllText(path, """
            {"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","vocab_size":151936,"hidden_size":896,"intermediate_size":4864,
             "num_hidden_layers":24,"num_attention_heads":14,"num_key_value_heads":2,"rope_theta":1000000.0,"rms_norm_eps":1e-06,
             "tie_word_embeddings":true,"max_position_embeddings":32768,"torch_dtype":"bfloat16","bos_token_id":151643,"eos_token_id":151643,
             "sliding_window":32768,"use_sliding_window":false,"hidden_act":"silu","rope_scaling":null}
            """);
        var c = Qwen2Config.Load(path);
        Assert.AreEqual(Qwen2Config.Qwen2_0_5B() with { BosTokenId = 151643, EosTokenId = 151643 }, c);
        Assert.AreEqual(64, c.HeadDim);
        File.WriteAllText(path, """{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"eos_token_id":[5,6]}""");
        var l = Qwen2Config.Load(path);
        Assert.IsFalse(l.AttentionBias);
        Assert.AreEqual(2, l.NumKeyValueHeads);
        Assert.AreEqual(5, l.EosTokenId);
        File.WriteAllText(path, """{"model_type":"mistral","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}""");
        Assert.ThrowsExactly<NotSupportedException>(() => Qwen2Config.Load(path));
    }
}
