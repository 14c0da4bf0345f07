using System.CommandLine;
using System.Text.Json;
using Microsoft.ML.StepDpo.Modeling;
using StepDpo.Tools.RealSize;

namespace StepDpo.Tools;

/// <summary>
/// One phase of <c>bench --sections real</c> in this process (the bench starts each in a fresh one, so that the peak
/// resident memory it reports, VmHWM, is the phase's own). Writes the phase's figures plus peak_rss_gb as JSON.
/// </summary>
internal sealed class BenchRealPhaseCommand : IToolCommand
{
    public Command Build()
    {
        var phase = new Option<string>("--phase") { Description = "load, decode, train or score.", Required = true };
        phase.AcceptOnlyFromAmong("load", "decode", "train", "score");
        var model = new Option<string?>("--model") { Description = "The Hugging Face folder (load, decode, train)." };
        var lora = new Option<bool>("--lora") { Description = "train: LoRA (else full fine-tuning with gradient checkpointing)." };
        var steps = new Option<int>("--steps") { Description = "train: optimizer steps.", DefaultValueFactory = _ => 3 };
        var batch = new Option<int>("--batch") { Description = "train: pairs per step.", DefaultValueFactory = _ => 4 };
        var prefixSteps = new Option<int>("--prefix-steps") { Description = "train: correct steps before the pair's step (sets the length).", DefaultValueFactory = _ => 6 };
        var newTokens = new Option<int>("--new-tokens") { Description = "decode: tokens timed per run.", DefaultValueFactory = _ => 16 };
        var embedLimit = new Option<long?>("--embed-limit-bytes") { Description = "train: ScorerWeights.EmbedLimitBytes (default the library's; 0 always references the policy folder)." };
        var scorer = new Option<string?>("--scorer") { Description = "train: where to save the scorer zip; score: the zip to load." };
        var output = new Option<string>("--output") { Description = "JSON file to write.", Required = true };
        var cmd = new Command("bench-real-phase", "One phase of bench --sections real, in this process (started by bench).")
        {
            phase, model, lora, steps, batch, prefixSteps, newTokens, embedLimit, scorer, output,
        };
        cmd.Hidden = true;
        cmd.SetAction(p =>
        {
            TorchRuntime.EnsureLoaded();
            NativeHeap.RetainFreedMemory();   // as the trainers do
            string? folder = p.GetValue(model);
            string Need(string? v, string what) => v ?? throw new ArgumentException($"--{what} is required for this phase.");
            var r = p.GetValue(phase) switch
            {
                "load" => RealPhases.Load(Need(folder, "model")),
                "decode" => RealPhases.Decode(Need(folder, "model"), p.GetValue(newTokens)),
                "train" => RealPhases.Train(Need(folder, "model"), p.GetValue(lora), p.GetValue(steps), p.GetValue(batch), p.GetValue(prefixSteps), p.GetValue(scorer), p.GetValue(embedLimit)),
                _ => RealPhases.Score(Need(p.GetValue(scorer), "scorer")),
            };
            r["peak_rss_gb"] = PeakMemory.PeakRssGb();
            File.WriteAllText(p.GetValue(output)!, JsonSerializer.Serialize(r, new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        });
        return cmd;
    }
}
