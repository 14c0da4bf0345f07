using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Tests.Tokenization;
using StepDpo.Tools.RealCheckpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Tools;

/// <summary>
/// The real-shape checkpoint writer (tools' create-checkpoint): the hub's layout, byte for byte where a published figure
/// exists, the known configs, and folders the library's loader reads (sharded = unsharded, tied and untied).
/// </summary>
[TestClass]
public sealed class HubCheckpointTests
{
    // A tiny Qwen2 with the real vocabulary (so the real tokenizer fits it), in the hub's config format.
    private static HubShape Tiny(bool tied) => new("tiny", "test/tiny", new List<KeyValuePair<string, string>>
    {
        new("architectures", "[\"Qwen2ForCausalLM\"]"), new("bos_token_id", "151643"), new("eos_token_id", "151643"), new("hidden_act", "\"silu\""),
        new("hidden_size", "16"), new("initializer_range", "0.02"), new("intermediate_size", "24"), new("max_position_embeddings", "256"),
        new("max_window_layers", "3"), new("model_type", "\"qwen2\""), new("num_attention_heads", "2"), new("num_hidden_layers", "3"),
        new("num_key_value_heads", "1"), new("rms_norm_eps", "1e-06"), new("rope_theta", "10000"), new("sliding_window", "256"),
        new("tie_word_embeddings", tied ? "true" : "false"), new("torch_dtype", "\"bfloat16\""), new("use_sliding_window", "false"),
        new("vocab_size", "151936"),
    }, new List<KeyValuePair<string, string>> { new("bos_token_id", "151643"), new("eos_token_id", "151643") }, MaxShardBytes: null, MathTokenizer: true);

    private static string NewFolder() => Path.Combine(Path.GetTempPath(), "stepdpo-hub-" + Guid.NewGuid().ToString("N"));

    [TestMethod]
    public void ASingleFileIsByteForByteTheSizeOfTheHubsQwen25_0_5BFile()
    {
        // The hub's Qwen2.5-0.5B(-Instruct) model.safetensors is 988,097,824 bytes: 8 + a 32,280-byte header + 988,065,536
        // bytes of bf16 data. Same header JSON (name-sorted, compact, "__metadata__" first, space-padded) gives the same size.
        var s = HubShape.Find("qwen2.5-0.5b");
        var tensors = HubWeightLayout.Tensors(s.Int("vocab_size"), s.Int("hidden_size"), s.Int("intermediate_size"), s.Int("num_hidden_layers"),
            s.Int("num_attention_heads"), s.Int("num_key_value_heads"), s.Bool("tie_word_embeddings"));
        var shards = HubWeightLayout.Split(tensors, 2, s.MaxShardBytes);
        Assert.HasCount(1, shards);
        Assert.AreEqual("model.safetensors", shards[0].FileName);
        Assert.HasCount(290, shards[0].Tensors, "24 layers x 12 + embedding + final norm; tied: no lm_head");
        var header = SafeTensors.Header(shards[0].Tensors.Select(t => (t.Name, ScalarType.BFloat16, t.Shape)));
        long data = tensors.Sum(t => t.Elements) * 2;
        Assert.AreEqual(988_065_536L, data);
        Assert.AreEqual(988_097_824L, header.Length + data);
    }

    [TestMethod]
    public void Qwen25Math7BShardsAsTheHubDoes()
    {
        var s = HubShape.Find("qwen2.5-math-7b");
        var tensors = HubWeightLayout.Tensors(s.Int("vocab_size"), s.Int("hidden_size"), s.Int("intermediate_size"), s.Int("num_hidden_layers"),
            s.Int("num_attention_heads"), s.Int("num_key_value_heads"), s.Bool("tie_word_embeddings"));
        var shards = HubWeightLayout.Split(tensors, 2, s.MaxShardBytes);
        CollectionAssert.AreEqual(Enumerable.Range(1, 4).Select(k => $"model-{k:D5}-of-00004.safetensors").ToArray(), shards.Select(x => x.FileName).ToArray());
        // The hub lists Qwen's 7B shards as 3.95, 3.86, 3.86 and 3.56 GB; the index's total_size is 15,231,233,024.
        CollectionAssert.AreEqual(new[] { 3.95, 3.86, 3.86, 3.56 }, shards.Select(x => Math.Round(x.Tensors.Sum(t => t.Elements) * 2 / 1e9, 2)).ToArray());
        Assert.AreEqual(15_231_233_024L, tensors.Sum(t => t.Elements) * 2);
        Assert.AreEqual("lm_head.weight", tensors[^1].Name, "untied: the LM head is stored, last in state-dict order");
    }

    [TestMethod]
    public void KnownConfigsLoadAndHaveTheirModelsParameterCounts()
    {
        // Parameter counts: the index total_size / 2 (7B) and the model cards' 0.49B / 1.54B, exactly as computed from the shapes.
        var expected = new Dictionary<string, long>
        {
            ["qwen2.5-0.5b"] = 494_032_768, ["qwen2.5-1.5b"] = 1_543_714_304, ["qwen2.5-math-1.5b"] = 1_543_714_304, ["qwen2.5-math-7b"] = 7_615_616_512,
        };
        foreach (var s in HubShape.Known)
        {
            var json = s.ConfigJson("bfloat16");
            CollectionAssert.AreEqual(json.Select(kv => kv.Key).OrderBy(k => k, StringComparer.Ordinal).ToArray(), json.Select(kv => kv.Key).ToArray(), "sorted keys");
            var c = Qwen2Config.FromJson(json);
            Assert.AreEqual(expected[s.Name], c.ParameterCount, s.Name);
            Assert.AreEqual(151643, c.BosTokenId);
            Assert.AreEqual(151643, c.EosTokenId, "base models end with <|endoftext|>");
            Assert.AreEqual(s.Name != "qwen2.5-math-7b", c.TieWordEmbeddings, s.Name);
            Assert.AreEqual("Qwen2ForCausalLM", json["architectures"]![0]!.GetValue<string>());
            Assert.IsFalse(json["use_sliding_window"]!.GetValue<bool>());
        }
        var math7 = Qwen2Config.FromJson(HubShape.Find("qwen2.5-math-7b").ConfigJson("bfloat16"));
        Assert.AreEqual((3584, 18944, 28, 28, 4, 152064, 4096, 10000.0), (math7.HiddenSize, math7.IntermediateSize, math7.NumHiddenLayers,
            math7.NumAttentionHeads, math7.NumKeyValueHeads, math7.VocabSize, math7.MaxPositionEmbeddings, math7.RopeTheta));
        var small = Qwen2Config.FromJson(HubShape.Find("qwen2.5-0.5b").ConfigJson("bfloat16"));
        Assert.AreEqual((896, 4864, 24, 14, 2, 151936, 32768, 1e6), (small.HiddenSize, small.IntermediateSize, small.NumHiddenLayers,
            small.NumAttentionHeads, small.NumKeyValueHeads, small.VocabSize, small.MaxPositionEmbeddings, small.RopeTheta));
        // Numbers keep the hub file's text.
        StringAssert.Contains(HubShape.Find("qwen2.5-0.5b").ConfigJson("bfloat16").ToJsonString(), "\"rms_norm_eps\":1e-06");
        StringAssert.Contains(HubShape.Find("qwen2.5-0.5b").ConfigJson("float32").ToJsonString(), "\"torch_dtype\":\"float32\"");
    }

    [TestMethod]
    public void AShardedFolderHasTheHubLayout()
    {
        string dir = NewFolder();
        try
        {
            var shape = Tiny(tied: false);
            HubCheckpointWriter.Write(shape, ScalarType.BFloat16, seed: 3, dir, TokenizerFixtures.QwenDirectory, maxShardBytes: 3_000_000);
            var tensors = HubWeightLayout.Tensors(151936, 16, 24, 3, 2, 1, tied: false);
            long total = tensors.Sum(t => t.Elements) * 2;
            var files = Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
            CollectionAssert.AreEqual(new[]
            {
                "config.json", "generation_config.json", "merges.txt", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                "model-00003-of-00003.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "vocab.json",
            }, files);

            var index = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "model.safetensors.index.json")))!.AsObject();
            CollectionAssert.AreEqual(new[] { "metadata", "weight_map" }, index.Select(kv => kv.Key).ToArray());
            Assert.AreEqual(total, index["metadata"]!["total_size"]!.GetValue<long>());
            var map = index["weight_map"]!.AsObject();
            CollectionAssert.AreEqual(tensors.Select(t => t.Name).Order(StringComparer.Ordinal).ToArray(), map.Select(kv => kv.Key).ToArray(), "every tensor, sorted");
            Assert.AreEqual("model-00001-of-00003.safetensors", map["model.embed_tokens.weight"]!.GetValue<string>());
            Assert.AreEqual("model-00003-of-00003.safetensors", map["lm_head.weight"]!.GetValue<string>());

            long data = 0;
            foreach (var file in files.Where(f => f!.StartsWith("model-", StringComparison.Ordinal)))
            {
                var bytes = File.ReadAllBytes(Path.Combine(dir, file!));
                long n = BinaryPrimitives.ReadInt64LittleEndian(bytes);
                Assert.AreEqual(0, n % 8, "the data section starts 8-byte aligned");
                var header = JsonNode.Parse(bytes.AsSpan(8, (int)n))!.AsObject();
                Assert.AreEqual("{\"format\":\"pt\"}", header["__metadata__"]!.ToJsonString());
                var names = header.Select(kv => kv.Key).Where(k => k != "__metadata__").ToList();
                CollectionAssert.AreEqual(names.Order(StringComparer.Ordinal).ToList(), names, "safetensors orders a file's tensors by name");
                long at = 0;
                foreach (var name in names)
                {
                    Assert.AreEqual(file, map[name]!.GetValue<string>(), name);
                    Assert.AreEqual("BF16", header[name]!["dtype"]!.GetValue<string>());
                    var off = header[name]!["data_offsets"]!.AsArray();
                    Assert.AreEqual(at, off[0]!.GetValue<long>());
                    at = off[1]!.GetValue<long>();
                }
                Assert.AreEqual(8 + n + at, bytes.Length);
                data += at;
            }
            Assert.AreEqual(total, data);

            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
            Assert.AreEqual("bfloat16", config["torch_dtype"]!.GetValue<string>());
            StringAssert.StartsWith(File.ReadAllText(Path.Combine(dir, "config.json")), "{\n  \"architectures\": [");
            var tokConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "tokenizer_config.json")))!.AsObject();
            Assert.AreEqual(151664, tokConfig["added_tokens_decoder"]!.AsObject().Max(kv => int.Parse(kv.Key)), "Qwen2.5's added tokens end at <|file_sep|>");
            Assert.AreEqual("<|endoftext|>", tokConfig["eos_token"]!.GetValue<string>());
            StringAssert.Contains(tokConfig["chat_template"]!.GetValue<string>(), "Please reason step by step, and put your final answer within \\\\boxed{}.");
            StringAssert.StartsWith(File.ReadAllText(Path.Combine(dir, "merges.txt")), "#version: 0.2\n");
            Assert.AreEqual(151643, JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "vocab.json")))!.AsObject().Count);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void TheLoaderReadsAShardedFolderEqualToTheUnshardedOne(bool tied)
    {
        string single = NewFolder(), sharded = NewFolder();
        try
        {
            var shape = Tiny(tied);
            HubCheckpointWriter.Write(shape, ScalarType.BFloat16, seed: 5, single, TokenizerFixtures.QwenDirectory);
            HubCheckpointWriter.Write(shape, ScalarType.BFloat16, seed: 5, sharded, TokenizerFixtures.QwenDirectory, maxShardBytes: 2_000_000);
            Assert.IsTrue(File.Exists(Path.Combine(single, "model.safetensors")));
            Assert.IsTrue(File.Exists(Path.Combine(sharded, "model.safetensors.index.json")));
            var (a, tokA) = ModelFolder.Load(single);
            var (b, _) = ModelFolder.Load(sharded);
            using (a)
            using (b)
            {
                Assert.AreEqual(ScalarType.BFloat16, a.DType);
                Assert.AreEqual(tied, a.Config.TieWordEmbeddings);
                Assert.AreEqual(tied ? 0 : 1, a.named_parameters().Count(p => p.name == "lm_head.weight"));
                var pa = a.named_parameters().ToDictionary(p => p.name, p => p.parameter);
                foreach (var (name, p) in b.named_parameters())
                    Assert.IsTrue(pa[name].equal(p).all().item<bool>(), name);
                // HF init: N(0, 0.02) projections, unit norms, zero biases.
                double std = pa["model.layers.0.mlp.up_proj.weight"].to(ScalarType.Float32).std().item<float>();
                Assert.AreEqual(0.02, std, 0.002);
                Assert.IsTrue(pa["model.norm.weight"].eq(torch.ones(1, dtype: ScalarType.BFloat16)).all().item<bool>());
                Assert.AreEqual(0, pa["model.layers.1.self_attn.k_proj.bias"].to(ScalarType.Float32).abs().sum().item<float>());
                Assert.AreEqual(151665, tokA.VocabularySize, "Qwen2.5's 151,643 BPE tokens + 22 added tokens");
                Assert.AreEqual(151643, tokA.EosId);
            }
            var (c, _) = ModelFolder.Load(single);
            using (c)
            {
                // Another seed gives other weights.
                string other = NewFolder();
                try
                {
                    HubCheckpointWriter.Write(shape, ScalarType.BFloat16, seed: 6, other, TokenizerFixtures.QwenDirectory);
                    var (d, _) = ModelFolder.Load(other);
                    using (d)
                        Assert.IsFalse(c.Model.Embedding.Weight.equal(d.Model.Embedding.Weight).all().item<bool>());
                }
                finally { Directory.Delete(other, true); }
            }
        }
        finally
        {
            foreach (var d in new[] { single, sharded })
                if (Directory.Exists(d)) Directory.Delete(d, true);
        }
    }

    [TestMethod]
    public void SparseLayersKeepTheLayoutAndLeaveOnlyTheLayerProjectionsZero()
    {
        string dense = NewFolder(), sparse = NewFolder();
        try
        {
            var shape = Tiny(tied: false);
            HubCheckpointWriter.Write(shape, ScalarType.BFloat16, seed: 5, dense, TokenizerFixtures.QwenDirectory, maxShardBytes: 2_000_000);
            HubCheckpointWriter.Write(shape, ScalarType.BFloat16, seed: 5, sparse, TokenizerFixtures.QwenDirectory, maxShardBytes: 2_000_000, sparseLayers: true);
            var files = Directory.GetFiles(dense).Select(Path.GetFileName).Order().ToArray();
            CollectionAssert.AreEqual(files, Directory.GetFiles(sparse).Select(Path.GetFileName).Order().ToArray());
            foreach (var f in files)
                Assert.AreEqual(new FileInfo(Path.Combine(dense, f!)).Length, new FileInfo(Path.Combine(sparse, f!)).Length, f);
            var (a, _) = ModelFolder.Load(dense);
            var (b, _) = ModelFolder.Load(sparse);
            using (a)
            using (b)
            {
                var pa = a.named_parameters().ToDictionary(p => p.name, p => p.parameter);
                int zeroed = 0;
                foreach (var (name, p) in b.named_parameters())
                {
                    if (HubCheckpointWriter.IsLayerProjection(name))
                    {
                        Assert.AreEqual(0, p.to(ScalarType.Float32).abs().sum().item<float>(), name);
                        zeroed++;
                    }
                    else Assert.IsTrue(pa[name].equal(p).all().item<bool>(), name);
                }
                Assert.AreEqual(3 * 10, zeroed, "per layer: q/k/v weights and biases, o, gate, up, down");
                Assert.IsTrue(b.named_parameters().Any(p => p.name == "model.layers.0.input_layernorm.weight"));
            }
        }
        finally
        {
            foreach (var d in new[] { dense, sparse })
                if (Directory.Exists(d)) Directory.Delete(d, true);
        }
    }

    [TestMethod]
    public void AFolderThatIsNotEmptyIsRefused()
    {
        string dir = NewFolder();
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "keep.txt"), "x");
            Assert.ThrowsExactly<IOException>(() => HubCheckpointWriter.Write(Tiny(true), ScalarType.BFloat16, 1, dir, TokenizerFixtures.QwenDirectory));
            Assert.AreEqual("x", File.ReadAllText(Path.Combine(dir, "keep.txt")));
        }
        finally { Directory.Delete(dir, true); }
    }
}
