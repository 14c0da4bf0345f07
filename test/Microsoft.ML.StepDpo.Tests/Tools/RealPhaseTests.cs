using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Tests.Text;
using Microsoft.ML.StepDpo.Tests.Tokenization;
using StepDpo.Tools.RealCheckpoints;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Tools;

/// <summary>
/// bench --sections real's phases at a tiny size, each in a fresh process as the bench runs them: a hub-layout folder
/// with the real tokenizer, LoRA and full Step-DPO steps with the scorer saved, the scorer loaded and used elsewhere.
/// </summary>
[TestClass]
public sealed class RealPhaseTests
{
    private static HubShape Tiny() => new("tiny", "test/tiny", new List<KeyValuePair<string, string>>
    {
        new("architectures", "[\"Qwen2ForCausalLM\"]"), new("bos_token_id", "151643"), new("eos_token_id", "151643"),
        new("hidden_size", "16"), new("initializer_range", "0.02"), new("intermediate_size", "32"), new("max_position_embeddings", "1024"),
        new("model_type", "\"qwen2\""), new("num_attention_heads", "2"), new("num_hidden_layers", "2"), new("num_key_value_heads", "1"),
        new("rms_norm_eps", "1e-06"), new("rope_theta", "10000"), new("tie_word_embeddings", "true"), new("torch_dtype", "\"bfloat16\""),
        new("vocab_size", "151936"),
    }, new List<KeyValuePair<string, string>>(), MaxShardBytes: null, MathTokenizer: true);

    [TestMethod]
    public void TrainAndScorePhasesReportTheirFiguresFromChildProcesses()
    {
        string dir = Directory.CreateTempSubdirectory("stepdpo-real-").FullName;
        try
        {
            string model = Path.Combine(dir, "model");
            HubCheckpointWriter.Write(Tiny(), ScalarType.BFloat16, seed: 1, model, TokenizerFixtures.QwenDirectory);
            // full-referenced: EmbedLimitBytes 0, as a real-size full fine-tune's scorer is saved (policy folder beside the zip).
            double embeddedZipMb = 0;
            foreach (var method in new[] { "lora", "full", "full-referenced" })
            {
                bool referenced = method == "full-referenced";
                string zip = Path.Combine(dir, method + ".zip"), train = Path.Combine(dir, method + "-train.json"), score = Path.Combine(dir, method + "-score.json");
                var args = new List<string> { "bench-real-phase", "--phase", "train", "--model", model, "--steps", "2", "--batch", "2", "--prefix-steps", "1", "--scorer", zip, "--output", train };
                if (method == "lora") args.Add("--lora");
                if (referenced) args.AddRange(new[] { "--embed-limit-bytes", "0" });
                var (code, output) = FreshProcess.RunTools(args.ToArray());
                Assert.AreEqual(0, code, output);
                var t = JsonNode.Parse(File.ReadAllText(train))!;
                Assert.AreEqual(referenced ? "full" : method, t["method"]!.GetValue<string>());
                Assert.AreEqual(2, t["steps"]!.GetValue<int>());
                Assert.IsGreaterThan(0.0, t["mfu"]!.GetValue<double>());
                Assert.IsGreaterThan(0.0, t["gemm_gflops"]!.GetValue<double>());
                Assert.IsGreaterThan(t["labelled_tokens_per_pair"]!.GetValue<double>(), t["input_tokens_per_pair"]!.GetValue<double>());
                double peak = t["peak_rss_gb"]!.GetValue<double>();
                Assert.IsTrue(peak is > 0.05 and < 10, $"VmHWM of the child: {peak} GB");
                Assert.IsTrue(File.Exists(zip));
                Assert.AreEqual(new FileInfo(zip).Length / 1e6, t["zip_mb"]!.GetValue<double>(), 1e-9);
                string policy = Path.Combine(dir, method + "-policy");
                Assert.AreEqual(referenced, Directory.Exists(policy), "only a referenced full fine-tune writes its policy folder");
                if (referenced)
                {
                    Assert.IsTrue(File.Exists(Path.Combine(policy, "config.json")));
                    double policyGb = t["policy_folder_gb"]!.GetValue<double>();
                    Assert.IsGreaterThan(0.0, policyGb);
                    Assert.IsLessThan(embeddedZipMb, t["zip_mb"]!.GetValue<double>(), "the zip references the policy instead of embedding it");
                }
                else Assert.IsNull(t["policy_folder_gb"]);
                if (method == "full") embeddedZipMb = t["zip_mb"]!.GetValue<double>();

                (code, output) = FreshProcess.RunTools("bench-real-phase", "--phase", "score", "--scorer", zip, "--output", score);
                Assert.AreEqual(0, code, output);
                var s = JsonNode.Parse(File.ReadAllText(score))!;
                Assert.AreEqual(4, s["steps_scored"]!.GetValue<int>(), "the scored solution has four steps (the answer line belongs to the last)");
                Assert.IsGreaterThanOrEqualTo(0.0, s["load_s"]!.GetValue<double>());
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
