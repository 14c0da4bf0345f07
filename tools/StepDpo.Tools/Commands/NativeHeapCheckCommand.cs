using System.CommandLine;
using System.Globalization;
using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace StepDpo.Tools;

/// <summary>
/// Counts the page faults of each of eight training steps on the main thread, with or without
/// <see cref="NativeHeap.RetainFreedMemory"/>, so a test can see the setting work in a fresh process (the main
/// thread allocates from glibc's main arena; test runner threads have arenas of their own).
/// </summary>
internal sealed class NativeHeapCheckCommand : IToolCommand
{
    public Command Build()
    {
        var retain = new Option<bool>("--retain") { Description = "Call NativeHeap.RetainFreedMemory first." };
        var cmd = new Command("native-heap-check", "Page faults per training step (for the tests).") { retain };
        cmd.SetAction(p =>
        {
            if (!OperatingSystem.IsLinux())
            {
                Console.Error.WriteLine("native-heap-check reads /proc/self/stat and tests a glibc setting: Linux only.");
                return 2;
            }
            TorchRuntime.EnsureLoaded();
            bool retaining = p.GetValue(retain) && NativeHeap.RetainFreedMemory();
            // A small model with a large vocabulary, so that each step allocates and frees blocks of 32 MiB (logits,
            // their log-softmax and gradients) like a real training step: faults per step, steps 1..8.
            var config = new Qwen2Config
            {
                VocabSize = 16384, HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 1,
                RopeTheta = 10000, TieWordEmbeddings = true, MaxPositionEmbeddings = 512, TorchDtype = "float32",
            };
            using var model = Qwen2ForCausalLM.CreateRandom(config, ScalarType.Float32, seed: 1);
            var opt = torch.optim.AdamW(model.parameters(), lr: 1e-4);
            using var ids = torch.randint(0, config.VocabSize, new long[] { 2, 257 });
            using var x = ids.narrow(1, 0, 256);
            using var y = ids.narrow(1, 1, 256);
            model.train();
            var faults = new List<long>();
            for (int step = 0; step < 8; step++)
            {
                long before = MinorFaults();
                using (var scope = torch.NewDisposeScope())
                {
                    opt.zero_grad();
                    (-model.TokenLogProbs(x, y).mean()).backward();
                    opt.step();
                }
                faults.Add(MinorFaults() - before);
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"retaining={retaining} faults={string.Join(',', faults)}"));
            return 0;
        });
        return cmd;
    }

    // Minor page faults of this process so far: /proc/self/stat field 10 (the 8th after "pid (comm) ").
    private static long MinorFaults()
    {
        string stat = File.ReadAllText("/proc/self/stat");
        return long.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[7], CultureInfo.InvariantCulture);
    }
}
