using System.CommandLine;
using System.Text.Json;
using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace StepDpo.Tools;

/// <summary>
/// Writes tiny random Qwen2 and Llama checkpoints plus our logits for fixed ids, for
/// docs/crosscheck/qwen2_logits.py to compare against Hugging Face transformers on a machine that has it.
/// </summary>
internal sealed class CrosscheckFixtureCommand : IToolCommand
{
    public Command Build()
    {
        var output = new Option<DirectoryInfo>("--output") { Description = "Folder to write qwen2/ and llama/ into.", DefaultValueFactory = _ => new DirectoryInfo("artifacts/crosscheck") };
        var cmd = new Command("crosscheck-fixture", "Write tiny checkpoints and their logits for the transformers cross-check.") { output };
        cmd.SetAction(p => Run(p.GetValue(output)!));
        return cmd;
    }

    private static int Run(DirectoryInfo output)
    {
        TorchRuntime.EnsureLoaded();
        var qwen = new Qwen2Config
        {
            VocabSize = 96, HiddenSize = 64, IntermediateSize = 160, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
            RopeTheta = 10000, RmsNormEps = 1e-6, TieWordEmbeddings = true, MaxPositionEmbeddings = 128, TorchDtype = "float32",
        };
        var llama = qwen with { ModelType = "llama", AttentionBias = false, TieWordEmbeddings = false, RopeTheta = 500000, RmsNormEps = 1e-5 };
        long[][] ids = { new long[] { 1, 17, 42, 5, 88, 23, 23, 60, 3, 71, 9, 0 }, new long[] { 95, 94, 2, 50, 50, 50, 12, 31, 44, 8, 7, 6 } };
        foreach (var (name, config) in new[] { ("qwen2", qwen), ("llama", llama) })
        {
            using var scope = torch.NewDisposeScope();
            var dir = Path.Combine(output.FullName, name);
            using var model = Qwen2ForCausalLM.CreateRandom(config, ScalarType.Float32, seed: 1234);
            // Larger random weights and non-zero biases / norm scales, so the comparison exercises everything.
            using (torch.no_grad())
            {
                var gen = new Generator(4321);
                foreach (var (pname, p) in model.named_parameters())
                    p.copy_(pname.EndsWith("norm.weight", StringComparison.Ordinal) ? 1 + 0.1 * torch.randn(p.shape, generator: gen) : 0.15 * torch.randn(p.shape, generator: gen));
            }
            ModelCheckpoint.Save(model, dir);
            var logits = model.Forward(torch.tensor(ids.SelectMany(r => r).ToArray()).reshape(ids.Length, ids[0].Length));
            var values = logits.data<float>().ToArray();
            var json = new
            {
                input_ids = ids,
                shape = logits.shape,
                logits = values,
            };
            File.WriteAllText(Path.Combine(dir, "stepdpo_logits.json"), JsonSerializer.Serialize(json));
            Console.WriteLine($"{name}: wrote {dir} (logits {string.Join("x", logits.shape)}, max |logit| {logits.abs().max().item<float>():F3})");
        }
        return 0;
    }
}
