using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Tests.Pipeline;

/// <summary>
/// What this library writes for the hand-off to TRL + DeepSpeed, checked against what the readers there expect
/// (docs/gpu-and-real-checkpoints.md): the pairs JSONL as the Step-DPO authors' train.py reads it (datasets'
/// <c>load_dataset("json", data_files=...)</c>, then its qwen2-boxed/alpaca/deepseek-math templating into TRL's
/// prompt/chosen/rejected), and the LoRA folder as PEFT's <c>PeftModel.from_pretrained</c> reads it.
/// </summary>
[TestClass]
public sealed class InterchangeFormatTests
{
    // The columns train.py reads; the others (dataset, full_chosen, full_rejected, answer) it drops (remove_columns).
    private static readonly string[] StepDpoReaderColumns = { "prompt", "initial_reason_steps", "chosen", "rejected" };

    [TestMethod]
    public void PairsJsonlIsJsonLinesOfStringFieldsTheStepDpoReaderUses()
    {
        var rows = new[]
        {
            new StepPreferenceRow("MATH_Rephrased", "What is $2+3\\cdot4$? Use \"care\".", "Let's think step by step.\nStep 1: $3\\cdot4=12$.\nStep 2:",
                " $2+12=14$.", " $2+12=15$.", " $2+12=14$.\nThe answer is: 14", " $2+12=15$.\nThe answer is: 15", "14"),
            new StepPreferenceRow("gsm8k", "Résumé: 5 € × 3?", "", "Step 1: 5×3=15.", "Step 1: 5×3=16.", "Step 1: 5×3=15.\nThe answer is: 15", "Step 1: 5×3=16.", "15"),
        };
        var bytes = rows.SelectMany(r => r.ToJsonLine()).ToArray();
        var text = Encoding.UTF8.GetString(bytes);
        // JSON Lines (what datasets' json builder reads line by line): one object per line, UTF-8, no BOM.
        Assert.IsFalse(bytes.AsSpan().StartsWith(new byte[] { 0xEF, 0xBB, 0xBF }));
        var lines = text.Split('\n');
        Assert.AreEqual("", lines[^1], "every line ends with \\n");
        Assert.HasCount(rows.Length, lines[..^1]);
        foreach (var (line, row) in lines[..^1].Zip(rows))
        {
            using var doc = JsonDocument.Parse(line);
            var o = doc.RootElement;
            Assert.AreEqual(JsonValueKind.Object, o.ValueKind);
            foreach (var column in StepDpoReaderColumns)
                Assert.AreEqual(JsonValueKind.String, o.GetProperty(column).ValueKind, column);
            CollectionAssert.AreEqual(new[] { "dataset", "prompt", "initial_reason_steps", "chosen", "rejected", "full_chosen", "full_rejected", "answer" },
                o.EnumerateObject().Select(p => p.Name).ToArray(), "Math-Step-DPO-10K's columns, all strings");
            Assert.IsTrue(o.EnumerateObject().All(p => p.Value.ValueKind == JsonValueKind.String), "one type per column, or datasets' Arrow schema fails");

            // train.py's qwen2-boxed formatting of this row is exactly this library's template: the pair trains the same.
            string trlPrompt = TrainPyQwen2Boxed(o.GetProperty("prompt").GetString()!, o.GetProperty("initial_reason_steps").GetString()!);
            Assert.AreEqual(PromptTemplate.Qwen2Boxed.Build(row.Prompt, row.InitialReasonSteps), trlPrompt);
        }
    }

    // apply_step_wise_chat_template of dvlab-research/Step-DPO's train.py, 'qwen2-boxed': the template, then the steps.
    private static string TrainPyQwen2Boxed(string instruction, string initialReasonSteps) =>
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" +
        $"<|im_start|>user\n{instruction}\nPlease reason step by step, and put your final answer within \\boxed{{}}.<|im_end|>\n" +
        "<|im_start|>assistant\n" + initialReasonSteps;

    [TestMethod]
    public void LoraFolderHasPeftsAdapterConfigAndTensorNames()
    {
        TorchRuntime.EnsureLoaded();
        var config = Qwen2Config.Tiny(vocab: 40, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48);
        using var model = Qwen2ForCausalLM.CreateRandom(config, ScalarType.Float32, seed: 1);
        LoraAdapters.Apply(model, new LoraOptions { Rank = 4, Alpha = 8, Dropout = 0.05 });
        string dir = Directory.CreateTempSubdirectory("stepdpo-peft-").FullName;
        try
        {
            LoraAdapters.Save(model, dir, "Qwen/Qwen2.5-Math-7B");
            CollectionAssert.AreEquivalent(new[] { "adapter_config.json", "adapter_model.safetensors" }, Directory.GetFiles(dir).Select(Path.GetFileName).ToArray());

            // LoraConfig's fields as PEFT writes and reads them (peft.LoraConfig / PeftConfigMixin.from_pretrained).
            var c = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!.AsObject();
            Assert.AreEqual("LORA", c["peft_type"]!.GetValue<string>());
            Assert.AreEqual("CAUSAL_LM", c["task_type"]!.GetValue<string>());
            Assert.AreEqual("Qwen/Qwen2.5-Math-7B", c["base_model_name_or_path"]!.GetValue<string>());
            Assert.AreEqual(4, c["r"]!.GetValue<int>());
            Assert.AreEqual(8.0, c["lora_alpha"]!.GetValue<double>());
            Assert.AreEqual(0.05, c["lora_dropout"]!.GetValue<double>());
            Assert.AreEqual("none", c["bias"]!.GetValue<string>());
            Assert.IsFalse(c["fan_in_fan_out"]!.GetValue<bool>());
            Assert.IsFalse(c["use_rslora"]!.GetValue<bool>(), "scaling alpha/r, not alpha/sqrt(r)");
            Assert.IsFalse(c["use_dora"]!.GetValue<bool>());
            CollectionAssert.AreEquivalent(new[] { "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj" },
                c["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray());
            Assert.AreEqual(JsonValueKind.Null, c["modules_to_save"]?.GetValueKind() ?? JsonValueKind.Null);

            // Tensor names PEFT's set_peft_model_state_dict maps (it inserts the adapter name, ".default", on load):
            // base_model.model.<module path>.lora_A.weight [r, in] and .lora_B.weight [out, r], one pair per adapted projection.
            using var reader = new SafeTensors.Reader(Path.Combine(dir, "adapter_model.safetensors"));
            var names = reader.Entries.Keys.ToHashSet();
            Assert.HasCount(2 * 7 * config.NumHiddenLayers, names);
            foreach (var layer in Enumerable.Range(0, config.NumHiddenLayers))
                foreach (var (module, input, output) in new[]
                {
                    ("self_attn.q_proj", 32L, 32L), ("self_attn.k_proj", 32L, 16L), ("self_attn.v_proj", 32L, 16L), ("self_attn.o_proj", 32L, 32L),
                    ("mlp.gate_proj", 32L, 48L), ("mlp.up_proj", 32L, 48L), ("mlp.down_proj", 48L, 32L),
                })
                {
                    string prefix = $"base_model.model.model.layers.{layer}.{module}";
                    CollectionAssert.AreEqual(new[] { 4L, input }, reader.Entries[prefix + ".lora_A.weight"].Shape, prefix);
                    CollectionAssert.AreEqual(new[] { output, 4L }, reader.Entries[prefix + ".lora_B.weight"].Shape, prefix);
                    Assert.AreEqual(ScalarType.Float32, reader.Entries[prefix + ".lora_A.weight"].DType);
                }
            Assert.IsFalse(names.Any(n => n.Contains(".default.", StringComparison.Ordinal)), "saved files carry no adapter name");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
