using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Training;
using Spectre.Console;
using TorchSharp;

namespace StepDpo.Samples;

/// <summary>
/// The main job: Step-DPO end to end on the built-in arithmetic task (default command).
/// a. SFT model: the committed Hugging Face folder (Assets/sft-arithmetic), or --sft-model; b. self-generated step pairs;
/// c. Step-DPO; d. answer-level DPO, each trained from the SFT folder and saved as an ML.NET zip and a Hugging Face folder;
/// e. greedy held-out evaluation of every folder with 95% intervals, a table and results.json.
/// Stages b–d live in <see cref="DemoPreferenceStages"/>; if stage b yields no pairs, the demo says so and reports no
/// number for the methods that did not run.
/// </summary>
internal sealed class DemoCommand : ISampleCommand
{
    /// <summary>Where the committed SFT checkpoint lands next to the app.</summary>
    internal static string CommittedSftDirectory => Path.Combine(AppContext.BaseDirectory, "Assets", "sft-arithmetic");

    public Command Build()
    {
        var quick = new Option<bool>("--quick") { Description = QuickDescription };
        var output = new Option<DirectoryInfo>("--output") { Description = "Output folder.", DefaultValueFactory = _ => new DirectoryInfo("artifacts") };
        var seeds = new Option<int>("--seeds") { Description = "Repeat the seed-dependent stages with seeds 1..N and report mean and spread.", DefaultValueFactory = _ => 1 };
        var heldOut = new Option<int>("--heldout") { Description = "Held-out problems per seed (default 500, or 200 with --quick)." };
        var threads = new Option<int>("--threads") { Description = "Torch intra-op threads for training (1 keeps results reproducible and is fastest for this small model on a busy machine). Sampling and evaluation run the model through the fused decoder on every core where the CPU has AVX-512; their results do not depend on the number of cores.", DefaultValueFactory = _ => 1 };
        var sftModel = new Option<DirectoryInfo?>("--sft-model") { Description = "Start from this SFT model folder (a Hugging Face folder in the plain prompt format) instead of the committed one." };
        var lr = new Option<double?>("--lr") { Description = "Peak learning rate of Step-DPO and DPO (default: see docs/demo.md)." };
        var beta = new Option<double?>("--beta") { Description = "β of Step-DPO and DPO." };
        var epochs = new Option<int?>("--epochs") { Description = "Epochs of Step-DPO and DPO over the pairs." };
        var problems = new Option<int?>("--problems") { Description = "Training problems sampled for self-generated pairs." };
        var nll = new Option<double?>("--nll-weight") { Description = "RPO: weight of the chosen response's NLL added to the Step-DPO and DPO losses (default 0)." };
        var cmd = new Command("demo", "Run Step-DPO end to end on the built-in arithmetic task (default command).")
        {
            quick, output, seeds, heldOut, threads, sftModel, lr, beta, epochs, problems, nll,
        };
        cmd.SetAction(p =>
        {
            var stages = DemoPreferenceStages.For(p.GetValue(quick));
            stages = stages with
            {
                LearningRate = p.GetValue(lr) ?? stages.LearningRate, Beta = p.GetValue(beta) ?? stages.Beta,
                Epochs = p.GetValue(epochs) ?? stages.Epochs, Problems = p.GetValue(problems) ?? stages.Problems,
                NllWeight = p.GetValue(nll) ?? stages.NllWeight,
            };
            return Run(new DemoSettings(
                p.GetValue(quick), p.GetValue(output)!.FullName, Math.Max(1, p.GetValue(seeds)),
                p.GetValue(heldOut) is int n and > 0 ? n : p.GetValue(quick) ? 200 : 500, p.GetValue(threads), p.GetValue(sftModel)?.FullName, stages));
        });
        return cmd;
    }

    /// <summary>What --quick does, as --help shows it (measured on a quiet 2-core machine: 7.5-7.8 s in all against 32-36 s for the full run).</summary>
    internal const string QuickDescription =
        "Smaller run, about a quarter of the full run's time (8 s against 32-36 s on two quiet CPU cores): pairs from 48 training problems with " +
        "4 samples, rollouts and rectifications each (instead of 240 with 6), and 200 held-out problems (instead of 500).";

    internal sealed record DemoSettings(bool Quick, string Output, int Seeds, int HeldOut, int Threads, string? SftModel, DemoPreferenceStages.Settings Stages);

    /// <summary>Result of one stage that produces a model: its Hugging Face folder, or why there is none.</summary>
    private sealed record StageOutcome(string? ModelDirectory, string? Missing, double Seconds, int Pairs = 0);

    private static int Run(DemoSettings s)
    {
        if (s.Threads > 0) torch.set_num_threads(s.Threads);
        Directory.CreateDirectory(s.Output);
        var total = Stopwatch.StartNew();
        AnsiConsole.MarkupLine("[bold]Microsoft.ML.StepDpo demo[/]: Step-DPO on multi-step arithmetic word problems");
        var seconds = new Dictionary<string, double>();

        // a. SFT model: a Hugging Face folder that every later stage starts from.
        var (sft, sftSource) = StageSft(s);
        seconds["sft"] = 0;
        var seedList = Enumerable.Range(1, s.Seeds).ToArray();
        var perMethod = new Dictionary<string, List<(int Seed, AnswerMetrics Metrics)>>();
        var missing = new SortedSet<string>(StringComparer.Ordinal);
        int pairs = 0;
        double evalSeconds = 0;
        var trainingSteps = new Dictionary<string, List<(int Seed, IReadOnlyList<TrainingProgress> Steps)>>();
        foreach (int seed in seedList)
        {
            if (s.Seeds > 1) AnsiConsole.MarkupLine($"[bold]Seed {seed}[/]");
            // b–d. Self-generated pairs, then Step-DPO and answer-level DPO on the same pair budget.
            var (pairStage, stepDpo, dpo) = PreferenceStages(sft, seed, s, trainingSteps);
            foreach (var (name, stage) in new[] { ("b. step pairs", pairStage), ("c. Step-DPO", stepDpo), ("d. DPO", dpo) })
            {
                if (stage.Missing is not null)
                {
                    missing.Add($"{name}: {stage.Missing}");
                    AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(name)}: not available[/] — {Markup.Escape(stage.Missing)}");
                }
                else
                    seconds[Key(name)] = seconds.GetValueOrDefault(Key(name)) + stage.Seconds;
            }
            pairs = Math.Max(pairs, pairStage.Pairs);

            // e. evaluation of every model there is, on the same held-out problems
            var models = new List<(string Method, string Directory)> { ("sft", sft) };
            if (dpo.ModelDirectory is not null) models.Add(("dpo", dpo.ModelDirectory));
            if (stepDpo.ModelDirectory is not null) models.Add(("step_dpo", stepDpo.ModelDirectory));
            var (metrics, secs) = StageEvaluate(models, s.HeldOut, seed, s.Output);
            evalSeconds += secs;
            foreach (var (method, m) in metrics)
            {
                if (!perMethod.TryGetValue(method, out var list)) perMethod[method] = list = new();
                list.Add((seed, m));
            }
        }
        seconds["evaluation"] = evalSeconds;
        seconds["total"] = total.Elapsed.TotalSeconds;

        PrintTable(perMethod, seconds, pairs, s, sftSource);
        string chart = Path.Combine(s.Output, "demo.png");
        var bars = new[] { "sft", "dpo", "step_dpo" }.Where(perMethod.ContainsKey)
            .Select(m => { var (a, lo, hi) = Pooled(perMethod[m]); return (DemoChart.Label(m), a, lo, hi); }).ToList();
        DemoChart.Write(chart, bars, trainingSteps);
        AnsiConsole.MarkupLine($"Wrote the chart [blue]{Markup.Escape(chart)}[/].");
        var json = ResultsJson(seedList, perMethod, pairs, seconds, s, sftSource, missing);
        string resultsPath = Path.Combine(s.Output, "results.json");
        File.WriteAllText(resultsPath, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        AnsiConsole.MarkupLine($"Wrote [blue]{Markup.Escape(resultsPath)}[/] ({total.Elapsed.TotalSeconds:F0} s in all).");
        if (missing.Count > 0)
            AnsiConsole.MarkupLine("[yellow]This run shows the SFT starting point only: the SFT model's samples gave no step pairs to train on.[/]");
        return 0;
    }

    private static string Key(string stageName) => stageName switch
    {
        "b. step pairs" => "pairs",
        "c. Step-DPO" => "step_dpo",
        "d. DPO" => "dpo",
        _ => stageName,
    };

    // ---- a. SFT ---------------------------------------------------------------------------------------------

    private static (string Directory, string Source) StageSft(DemoSettings s)
    {
        string dir = s.SftModel ?? CommittedSftDirectory;
        if (!File.Exists(Path.Combine(dir, "config.json")))
            throw new InvalidOperationException(s.SftModel is null
                ? $"The committed SFT model is missing from '{dir}'. Rebuild the samples."
                : $"'{dir}' is not a model folder (no config.json).");
        AnsiConsole.MarkupLine(s.SftModel is null
            ? "[green]a. SFT[/]: the committed model, a Hugging Face folder (config.json, model.safetensors, tokenizer.json) in Assets/sft-arithmetic"
            : $"[green]a. SFT[/]: the model in {Markup.Escape(dir)}");
        return (dir, s.SftModel is null ? "committed" : "given");
    }

    // ---- b–d. Self-generated pairs, Step-DPO, DPO -------------------------------------------------------------
    // Each trainer starts from the SFT folder; each trained model is saved twice: the step scorer as an ML.NET zip
    // (for grade and score) and the trained policy as a Hugging Face folder (for evaluation, generate, or a next run).

    private static (StageOutcome Pairs, StageOutcome StepDpo, StageOutcome Dpo) PreferenceStages(string sft, int seed, DemoSettings s,
        Dictionary<string, List<(int Seed, IReadOnlyList<TrainingProgress> Steps)>> trainingSteps)
    {
        var settings = s.Stages;
        var files = DemoPreferenceStages.BuildPairs(sft, settings, seed, Path.Combine(s.Output, "pairs"));
        if (files.Pairs == 0)
        {
            const string none = "the SFT model's samples gave no usable pairs (see the counts above)";
            return (new StageOutcome(null, none, files.Seconds), new StageOutcome(null, none, 0), new StageOutcome(null, none, 0));
        }
        var pairStage = new StageOutcome(null, null, files.Seconds, files.Pairs);
        string suffix = seed == 1 ? "" : $"-seed{seed}";

        var step = DemoPreferenceStages.Train("c. Step-DPO", sft, files.StepPairs, files.Pairs, settings, seed,
            Path.Combine(s.Output, $"step-dpo-metrics-seed{seed}.jsonl"));
        var zip = Path.Combine(s.Output, $"step-dpo{suffix}.zip");
        new MLContext(seed).Model.SaveAtomically(step.Scorer, null, zip);
        string stepModel = Path.Combine(s.Output, $"step-dpo-model{suffix}");
        step.Scorer.SavePolicy(stepModel);
        AnsiConsole.MarkupLine($"   saved the step scorer as an ML.NET model, [blue]{Markup.Escape(zip)}[/], and the trained model as a Hugging Face folder, [blue]{Markup.Escape(stepModel)}[/]");

        var answer = DemoPreferenceStages.Train("d. DPO", sft, files.AnswerPairs, files.Pairs, settings, seed,
            Path.Combine(s.Output, $"dpo-metrics-seed{seed}.jsonl"));
        string dpoModel = Path.Combine(s.Output, $"dpo-model{suffix}");
        answer.Scorer.SavePolicy(dpoModel);

        Record(trainingSteps, "step_dpo", seed, step.Steps);
        Record(trainingSteps, "dpo", seed, answer.Steps);
        return (pairStage, new StageOutcome(stepModel, null, step.Seconds, files.Pairs), new StageOutcome(dpoModel, null, answer.Seconds, files.Pairs));
    }

    private static void Record(Dictionary<string, List<(int Seed, IReadOnlyList<TrainingProgress> Steps)>> trainingSteps, string method, int seed,
        IReadOnlyList<TrainingProgress> steps)
    {
        if (!trainingSteps.TryGetValue(method, out var list)) trainingSteps[method] = list = new();
        list.Add((seed, steps));
    }

    // ---- e. Evaluation --------------------------------------------------------------------------------------

    private sealed class HeldOutRow
    {
        public string Problem { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    private static (List<(string Method, AnswerMetrics Metrics)> Metrics, double Seconds) StageEvaluate(
        IReadOnlyList<(string Method, string Directory)> models, int heldOut, int seed, string output)
    {
        var clock = Stopwatch.StartNew();
        var ml = new MLContext(seed);
        var problems = ml.Data.LoadFromEnumerable(
            ArithmeticTask.Generate(ArithmeticTaskOptions.Demo, heldOut, HeldOutSeed(seed), TaskSplit.HeldOut)
                .Select(p => new HeldOutRow { Problem = p.Question, Answer = p.Answer.ToString(CultureInfo.InvariantCulture) }));
        var results = new List<(string, AnswerMetrics)>();
        foreach (var (method, directory) in models)
        {
            string label = $"e. evaluate {method} (greedy, {heldOut} held-out)";
            var r = ConsoleProgress.Run(label, line => ml.StepDpo().EvaluateGreedy(directory, problems, DemoPreferenceStages.Template,
                maxNewTokens: 160, batchSize: 64, progress: new InlineProgress<int>(done => line.Report(done, heldOut))));
            results.Add((method, r.Metrics));
            WriteSolutions(Path.Combine(output, $"eval-{method}-seed{seed}.jsonl"), r.Solutions);
        }
        AnsiConsole.MarkupLine($"[green]e. evaluation[/]: {models.Count} model(s) × {heldOut} held-out problems in {clock.Elapsed.TotalSeconds:F1} s");
        return (results, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Every graded solution, one JSON object per line (question, reference, solution, extracted, correct).</summary>
    private static void WriteSolutions(string path, IEnumerable<EvaluatedSolution> solutions)
    {
        using var w = new StreamWriter(path);
        foreach (var x in solutions)
            w.WriteLine(JsonSerializer.Serialize(new { question = x.Question, reference = x.Reference, solution = x.Solution, extracted = x.Extracted, correct = x.Correct }));
    }

    /// <summary>Held-out problems depend on the seed only (all methods of a seed see the same problems).</summary>
    internal static int HeldOutSeed(int seed) => 1000 + seed;

    // ---- Output ---------------------------------------------------------------------------------------------

    private static (double Accuracy, double Lower, double Upper) Pooled(IReadOnlyList<(int Seed, AnswerMetrics Metrics)> runs)
    {
        // Mean of per-seed accuracies; the interval is the Wilson interval of the pooled counts.
        var pooled = new AnswerMetrics(runs.Sum(r => r.Metrics.Count), runs.Sum(r => r.Metrics.Correct));
        return (runs.Average(r => r.Metrics.Accuracy), pooled.ConfidenceLower, pooled.ConfidenceUpper);
    }

    private static void PrintTable(Dictionary<string, List<(int Seed, AnswerMetrics Metrics)>> perMethod, Dictionary<string, double> seconds, int pairs, DemoSettings s, string sftSource)
    {
        var table = new Table().Title($"Held-out greedy accuracy ({s.HeldOut} problems{(s.Seeds > 1 ? $" per seed, mean of {s.Seeds} seeds" : "")})");
        table.AddColumns("Method", "Accuracy", "95% CI", s.Seeds > 1 ? "Spread (sd)" : "Correct", "Pairs", "Training time");
        foreach (var (method, label) in new[] { ("sft", "SFT"), ("dpo", "DPO"), ("step_dpo", "Step-DPO") })
        {
            if (!perMethod.TryGetValue(method, out var runs))
            {
                table.AddRow(label, "[grey]not run[/]", "", "", "", "");
                continue;
            }
            var (acc, lo, hi) = Pooled(runs);
            string third = s.Seeds > 1
                ? string.Create(CultureInfo.InvariantCulture, $"{StdDev(runs.Select(r => r.Metrics.Accuracy)) * 100:F1} pts")
                : $"{runs[0].Metrics.Correct}/{runs[0].Metrics.Count}";
            table.AddRow(label, string.Create(CultureInfo.InvariantCulture, $"{acc * 100:F1}%"),
                string.Create(CultureInfo.InvariantCulture, $"{lo * 100:F1}–{hi * 100:F1}%"), third,
                method == "sft" ? "—" : pairs.ToString(CultureInfo.InvariantCulture),
                method == "sft"
                    ? $"{sftSource} model"
                    : string.Create(CultureInfo.InvariantCulture, $"{seconds.GetValueOrDefault(method):F0} s"));
        }
        AnsiConsole.Write(table);
    }

    private static double StdDev(IEnumerable<double> xs)
    {
        var a = xs.ToArray();
        if (a.Length < 2) return 0;
        double m = a.Average();
        return Math.Sqrt(a.Sum(x => (x - m) * (x - m)) / (a.Length - 1));
    }

    private static JsonObject ResultsJson(int[] seeds, Dictionary<string, List<(int Seed, AnswerMetrics Metrics)>> perMethod, int pairs,
        Dictionary<string, double> seconds, DemoSettings s, string sftSource, IEnumerable<string> missing)
    {
        var methods = new JsonObject();
        foreach (var (method, runs) in perMethod)
        {
            var (acc, lo, hi) = Pooled(runs);
            var o = new JsonObject { ["accuracy"] = acc, ["ci95"] = new JsonArray(lo, hi) };
            if (seeds.Length > 1)
            {
                o["std"] = StdDev(runs.Select(r => r.Metrics.Accuracy));
                o["per_seed"] = new JsonArray(runs.Select(r => (JsonNode)new JsonObject
                {
                    ["seed"] = r.Seed,
                    ["accuracy"] = r.Metrics.Accuracy,
                    ["ci95"] = new JsonArray(r.Metrics.ConfidenceLower, r.Metrics.ConfidenceUpper),
                    ["correct"] = r.Metrics.Correct,
                    ["count"] = r.Metrics.Count,
                }).ToArray());
            }
            methods[method] = o;
        }
        var secs = new JsonObject();
        foreach (var (k, v) in seconds) secs[k] = Math.Round(v, 1);
        return new JsonObject
        {
            ["seeds"] = new JsonArray(seeds.Select(x => (JsonNode)x).ToArray()),
            ["methods"] = methods,
            ["pairs"] = pairs,
            ["seconds"] = secs,
            ["heldout_problems"] = s.HeldOut,
            ["sft_model"] = sftSource,
            ["stages_not_available"] = new JsonArray(missing.Select(m => (JsonNode)m).ToArray()),
        };
    }
}
