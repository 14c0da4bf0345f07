using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using StepDpo.Tools.RealCheckpoints;
using static TorchSharp.torch;

namespace StepDpo.Tools.RealSize;

/// <summary>
/// <c>bench --sections real</c>: the library at the sizes users bring, on folders laid out as the hub's (random weights,
/// made by <see cref="HubCheckpointWriter"/> when missing). Each phase runs in a fresh child process of this app
/// (<c>bench-real-phase</c>), so its peak RSS (VmHWM) is its own and a phase that runs out of memory fails alone.
/// Phases, in the order they should run: 0.5B load, decode, LoRA Step-DPO steps and scorer save/load/score, full
/// fine-tuning (gradient checkpointing) and its scorer; 1.5B LoRA steps and scoring; 7B LoRA scorer and scoring.
/// </summary>
internal static class RealSizeBenchmark
{
    public static readonly string[] AllPhases =
    {
        "load-0p5b", "decode-0p5b", "lora-0p5b", "score-0p5b-lora", "full-0p5b", "score-0p5b-full", "lora-1p5b", "score-1p5b-lora", "lora-7b", "score-7b-lora",
    };

    public static void Run(Dictionary<string, object> r, string workDirectory, IReadOnlyCollection<string> phases, bool quick)
    {
        Directory.CreateDirectory(workDirectory);
        string Folder(string shape)
        {
            string dir = Path.Combine(workDirectory, shape + "-bf16");
            if (!File.Exists(Path.Combine(dir, "config.json")))
            {
                if (Directory.Exists(dir)) Directory.Delete(dir, true);   // an interrupted write
                var clock = Stopwatch.StartNew();
                HubCheckpointWriter.Write(HubShape.Find(shape), ScalarType.BFloat16, seed: 1, dir, QwenTokenizerFiles.FindSource(), log: Console.WriteLine);
                Console.WriteLine($"created {dir} in {clock.Elapsed.TotalSeconds:F0} s");
            }
            return dir;
        }
        string Zip(string name) => Path.Combine(workDirectory, name + ".zip");
        int steps = quick ? 2 : 4;

        foreach (var phase in AllPhases.Where(phases.Contains))
        {
            Dictionary<string, JsonElement> res;
            switch (phase)
            {
                case "load-0p5b":
                    res = Child("load", "--model", Folder("qwen2.5-0.5b"));
                    Put(r, "real_0p5b", res, ("load_s", "load_s"), ("load_peak_rss_gb", "peak_rss_gb"));
                    break;
                case "decode-0p5b":
                    res = Child("decode", "--model", Folder("qwen2.5-0.5b"), "--new-tokens", quick ? "8" : "16");
                    Put(r, "real_0p5b", res, ("decode_tokens_per_s_b1", "decode_tokens_per_s_b1"), ("decode_tokens_per_s_b1_sampled", "decode_tokens_per_s_b1_sampled"),
                        ("decode_tokens_per_s_b32", "decode_tokens_per_s_b32"), ("decode_tokens_per_s_b32_sampled", "decode_tokens_per_s_b32_sampled"),
                        ("decode_peak_rss_gb", "peak_rss_gb"));
                    break;
                case "lora-0p5b":
                case "full-0p5b":
                case "lora-1p5b":
                case "lora-7b":
                {
                    bool lora = phase.StartsWith("lora", StringComparison.Ordinal);
                    string size = phase[(phase.IndexOf('-') + 1)..];
                    string shape = size switch { "0p5b" => "qwen2.5-0.5b", "1p5b" => "qwen2.5-math-1.5b", _ => "qwen2.5-math-7b" };
                    bool seven = size == "7b";
                    var args = new List<string> { "--model", Folder(shape), "--steps", seven ? "1" : steps.ToString(CultureInfo.InvariantCulture),
                        "--batch", seven ? "1" : "4", "--prefix-steps", seven ? "2" : "6", "--scorer", Zip($"scorer-{size}-{(lora ? "lora" : "full")}") };
                    if (lora) args.Add("--lora");
                    res = Child("train", args.ToArray());
                    string m = lora ? "lora" : "full";
                    Put(r, $"real_{size}", res, ($"{m}_mfu", "mfu"), ($"{m}_tokens_per_s", "tokens_per_s"), ($"{m}_gemm_gflops", "gemm_gflops"),
                        ($"{m}_flops_per_input_token", "flops_per_input_token"), ($"{m}_flops_count", "flops_count"), ($"{m}_input_tokens_per_pair", "input_tokens_per_pair"),
                        ($"{m}_fit_s", "fit_s"), ($"{m}_train_peak_rss_gb", "train_peak_rss_gb"), ($"{m}_peak_rss_gb", "peak_rss_gb"),
                        ($"{m}_save_s", "save_s"), ($"{m}_zip_mb", "zip_mb"), ($"{m}_policy_folder_gb", "policy_folder_gb"), ($"{m}_tokens_per_s_per_step", "tokens_per_s_per_step"));
                    break;
                }
                default: // score-<size>-<method>
                {
                    var parts = phase.Split('-');
                    res = Child("score", "--scorer", Zip($"scorer-{parts[1]}-{parts[2]}"));
                    Put(r, $"real_{parts[1]}", res, ($"{parts[2]}_scorer_load_s", "load_s"), ($"{parts[2]}_first_row_s", "first_row_s"),
                        ($"{parts[2]}_next_row_s", "next_row_s"), ($"score_{parts[2]}_peak_rss_gb", "peak_rss_gb"));
                    if (phase == "score-7b-lora") r["real_7b_score_peak_rss_gb"] = res["peak_rss_gb"].GetDouble();
                    break;
                }
            }
        }
    }

    private static void Put(Dictionary<string, object> r, string prefix, Dictionary<string, JsonElement> res, params (string Key, string From)[] keys)
    {
        foreach (var (key, from) in keys)
            if (res.TryGetValue(from, out var v)) r[$"{prefix}_{key}"] = v;
    }

    /// <summary>Runs <c>bench-real-phase</c> in a fresh process of this app and returns its JSON.</summary>
    private static Dictionary<string, JsonElement> Child(string phase, params string[] args)
    {
        string output = Path.Combine(Path.GetTempPath(), $"stepdpo-real-{phase}-{Guid.NewGuid():N}.json");
        var start = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
        // Under `dotnet StepDpo.Tools.dll` the process is the dotnet host: pass the app's assembly first.
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
            start.ArgumentList.Add(typeof(RealSizeBenchmark).Assembly.Location);
        foreach (var a in new[] { "bench-real-phase", "--phase", phase }.Concat(args).Concat(new[] { "--output", output }))
            start.ArgumentList.Add(a);
        Console.WriteLine($"[real] {phase} {string.Join(' ', args)}");
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        process.WaitForExit();
        if (process.ExitCode != 0 || !File.Exists(output))
            throw new InvalidOperationException($"bench-real-phase {phase} failed (exit code {process.ExitCode}{(process.ExitCode == 137 ? ": killed, most likely out of memory" : "")}).");
        var res = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(File.ReadAllText(output))!;
        File.Delete(output);
        Console.WriteLine($"[real] {phase}: {clock.Elapsed.TotalSeconds:F0} s, {string.Join(", ", res.Where(kv => kv.Value.ValueKind != JsonValueKind.Array).Select(kv => $"{kv.Key}={kv.Value}"))}");
        return res;
    }
}
