using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Tasks;
using Spectre.Console;
using TorchSharp;

namespace StepDpo.Samples;

/// <summary>
/// The main job: Step-DPO end to end on the built-in arithmetic task (default command).
/// a. SFT model: the committed one (Assets/sft-arithmetic), or trained from scratch with --retrain-sft and cached
///    under the output folder; b. self-generated step pairs; c. Step-DPO; d. answer-level DPO;
/// e. greedy held-out evaluation with 95% intervals, a table and results.json.
/// Stages b–d live in <see cref="DemoPreferenceStages"/>; if stage b yields no pairs, the demo says so and reports no
/// number for the methods that did not run.
/// </summary>
internal sealed class DemoCommand : ISampleCommand
{
    /// <summary>Where the committed SFT checkpoint lands next to the app.</summary>
    internal static string CommittedSftDirectory => Path.Combine(AppContext.BaseDirectory, "Assets", "sft-arithmetic");

    public Command Build()
    {
        var quick = new Option<bool>("--quick") { Description = "Fewer held-out problems (finishes in a few minutes)." };
        var output = new Option<DirectoryInfo>("--output") { Description = "Output folder.", DefaultValueFactory = _ => new DirectoryInfo("artifacts") };
        var seeds = new Option<int>("--seeds") { Description = "Repeat the seed-dependent stages with seeds 1..N and report mean and spread.", DefaultValueFactory = _ => 1 };
        var retrain = new Option<bool>("--retrain-sft") { Description = "Train the SFT model from scratch (tens of minutes) instead of loading the committed one; cached under the output folder." };
        var heldOut = new Option<int>("--heldout") { Description = "Held-out problems per seed (default 500, or 200 with --quick)." };
        var threads = new Option<int>("--threads") { Description = "Torch intra-op threads (1 keeps results reproducible and is fastest for this small model on a busy machine).", DefaultValueFactory = _ => 1 };
        var sftModel = new Option<DirectoryInfo?>("--sft-model") { Description = "Start from this SFT model folder instead of the committed one (e.g. a train-sft-demo output)." };
        var lr = new Option<double?>("--lr") { Description = "Peak learning rate of Step-DPO and DPO (default: see docs/demo.md)." };
        var beta = new Option<double?>("--beta") { Description = "β of Step-DPO and DPO." };
        var epochs = new Option<int?>("--epochs") { Description = "Epochs of Step-DPO and DPO over the pairs." };
        var problems = new Option<int?>("--problems") { Description = "Training problems sampled for self-generated pairs." };
        var nll = new Option<double?>("--nll-weight") { Description = "RPO: weight of the chosen response's NLL added to the Step-DPO and DPO losses (default 0)." };
        var cmd = new Command("demo", "Run Step-DPO end to end on the built-in arithmetic task (default command).")
        {
            quick, output, seeds, retrain, heldOut, threads, sftModel, lr, beta, epochs, problems, nll,
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
                p.GetValue(quick), p.GetValue(output)!.FullName, Math.Max(1, p.GetValue(seeds)), p.GetValue(retrain),
                p.GetValue(heldOut) is int n and > 0 ? n : p.GetValue(quick) ? 200 : 500, p.GetValue(threads), p.GetValue(sftModel)?.FullName, stages));
        });
        return cmd;
    }

    internal sealed record DemoSettings(bool Quick, string Output, int Seeds, bool RetrainSft, int HeldOut, int Threads, string? SftModel,
        DemoPreferenceStages.Settings? Stages = null);

    /// <summary>Result of one stage that produces a model: the model, or why there is none.</summary>
    private sealed record StageOutcome(Qwen2ForCausalLM? Model, string? Missing, double Seconds, int Pairs = 0);

    private static int Run(DemoSettings s)
    {
        TorchRuntime.EnsureLoaded();
        if (s.Threads > 0) torch.set_num_threads(s.Threads);
        Directory.CreateDirectory(s.Output);
        var total = Stopwatch.StartNew();
        AnsiConsole.MarkupLine("[bold]Microsoft.ML.StepDpo demo[/]: Step-DPO on multi-step arithmetic word problems");
        var seconds = new Dictionary<string, double>();

        // a. SFT model
        var (sft, tokenizer, sftSource, sftSeconds) = StageSft(s);
        seconds["sft"] = sftSeconds;
        var seedList = Enumerable.Range(1, s.Seeds).ToArray();
        var perMethod = new Dictionary<string, List<(int Seed, AnswerMetrics Metrics)>>();
        var missing = new SortedSet<string>(StringComparer.Ordinal);
        int pairs = 0;
        double evalSeconds = 0;
        var marginHistory = new Dictionary<string, List<(int Seed, List<Dictionary<string, double>> History)>>();
        using (sft)
        {
            foreach (int seed in seedList)
            {
                if (s.Seeds > 1) AnsiConsole.MarkupLine($"[bold]Seed {seed}[/]");
                // b–d. Self-generated pairs, then Step-DPO and answer-level DPO on the same pair budget.
                var (pairStage, stepDpo, dpo) = PreferenceStages(sft, tokenizer, seed, s, marginHistory);
                foreach (var (name, stage) in new[] { ("b. step pairs", pairStage), ("c. Step-DPO", stepDpo), ("d. DPO", dpo) })
                {
                    if (stage.Missing is not null)
                    {
                        missing.Add($"{name}: {stage.Missing}");
                        AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(name)}: not available yet[/] — {Markup.Escape(stage.Missing)}");
                    }
                    else
                        seconds[Key(name)] = seconds.GetValueOrDefault(Key(name)) + stage.Seconds;
                }
                pairs = Math.Max(pairs, pairStage.Pairs);

                // e. evaluation of every model there is, on the same held-out problems
                var models = new List<(string Method, Qwen2ForCausalLM Model)> { ("sft", sft) };
                if (dpo.Model is not null) models.Add(("dpo", dpo.Model));
                if (stepDpo.Model is not null) models.Add(("step_dpo", stepDpo.Model));
                var (metrics, secs) = StageEvaluate(models, tokenizer, s.HeldOut, seed, s.Output);
                evalSeconds += secs;
                foreach (var (method, m) in metrics)
                {
                    if (!perMethod.TryGetValue(method, out var list)) perMethod[method] = list = new();
                    list.Add((seed, m));
                }
                dpo.Model?.Dispose();
                stepDpo.Model?.Dispose();
            }
        }
        seconds["evaluation"] = evalSeconds;
        seconds["total"] = total.Elapsed.TotalSeconds;

        PrintTable(perMethod, seconds, pairs, s, sftSource);
        string chart = Path.Combine(s.Output, "demo.png");
        var bars = new[] { "sft", "dpo", "step_dpo" }.Where(perMethod.ContainsKey)
            .Select(m => { var (a, lo, hi) = Pooled(perMethod[m]); return (DemoChart.Label(m), a, lo, hi); }).ToList();
        DemoChart.Write(chart, bars, marginHistory);
        AnsiConsole.MarkupLine($"Wrote the chart [blue]{Markup.Escape(chart)}[/].");
        var json = ResultsJson(seedList, perMethod, pairs, seconds, s, sftSource, missing);
        string resultsPath = Path.Combine(s.Output, "results.json");
        File.WriteAllText(resultsPath, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        AnsiConsole.MarkupLine($"Wrote [blue]{Markup.Escape(resultsPath)}[/] ({total.Elapsed.TotalSeconds:F0} s in all).");
        if (missing.Count > 0)
            AnsiConsole.MarkupLine("[yellow]This run shows the SFT starting point only: the self-generated pairs, Step-DPO and DPO stages are not in this build yet.[/]");
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

    private static (Qwen2ForCausalLM Model, ByteLevelBpeTokenizer Tokenizer, string Source, double Seconds) StageSft(DemoSettings s)
    {
        var clock = Stopwatch.StartNew();
        string cached = Path.Combine(s.Output, "sft-model");
        if (s.SftModel is not null)
        {
            var (m, t) = ArithmeticSftRecipe.Load(s.SftModel);
            AnsiConsole.MarkupLine($"[green]a. SFT[/]: loaded {Markup.Escape(s.SftModel)} ({Parameters(m):N0} parameters) in {clock.Elapsed.TotalSeconds:F1} s");
            return (m, t, "given", clock.Elapsed.TotalSeconds);
        }
        if (!s.RetrainSft)
        {
            if (!File.Exists(Path.Combine(CommittedSftDirectory, ModelCheckpoint.ConfigFile)))
                throw new InvalidOperationException($"The committed SFT model is missing from '{CommittedSftDirectory}'. Rebuild the samples, or run with --retrain-sft.");
            var (m, t) = ArithmeticSftRecipe.Load(CommittedSftDirectory);
            AnsiConsole.MarkupLine($"[green]a. SFT[/]: loaded the committed model ({Parameters(m):N0} parameters) from Assets/sft-arithmetic in {clock.Elapsed.TotalSeconds:F1} s");
            return (m, t, "committed", clock.Elapsed.TotalSeconds);
        }
        if (File.Exists(Path.Combine(cached, ModelCheckpoint.ConfigFile)))
        {
            var (m, t) = ArithmeticSftRecipe.Load(cached);
            AnsiConsole.MarkupLine($"[green]a. SFT[/]: reused the model trained earlier in {Markup.Escape(cached)} ({clock.Elapsed.TotalSeconds:F1} s; delete it to retrain)");
            return (m, t, "cached", clock.Elapsed.TotalSeconds);
        }

        var settings = new ArithmeticSftSettings();
        var tokenizer = ArithmeticSftRecipe.CreateTokenizer();
        settings.Sft.MetricsPath = Path.Combine(s.Output, "sft-metrics.jsonl");
        Qwen2ForCausalLM? model = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("a. SFT from scratch", maxValue: 1);
                settings.Sft.Progress = new InlineProgress<Microsoft.ML.StepDpo.Training.TrainingProgress>(p =>
                {
                    task.MaxValue = p.TotalSteps;
                    task.Value = p.Step;
                    if (p.Metrics.TryGetValue("loss", out double loss))
                        task.Description = string.Create(CultureInfo.InvariantCulture, $"a. SFT from scratch (loss {loss:F3})");
                });
                model = ArithmeticSftRecipe.Train(settings, tokenizer);
            });
        ArithmeticSftRecipe.Save(model!, tokenizer, cached);
        AnsiConsole.MarkupLine($"[green]a. SFT[/]: trained in {clock.Elapsed.TotalMinutes:F1} min, cached in {Markup.Escape(cached)}");
        return (model!, tokenizer, "retrained", clock.Elapsed.TotalSeconds);
    }

    // ---- b–d. Self-generated pairs, Step-DPO, DPO -------------------------------------------------------------
    // Each trainer copies the SFT model, so the SFT model itself is never modified.

    private static (StageOutcome Pairs, StageOutcome StepDpo, StageOutcome Dpo) PreferenceStages(Qwen2ForCausalLM sft, ByteLevelBpeTokenizer tokenizer,
        int seed, DemoSettings s, Dictionary<string, List<(int Seed, List<Dictionary<string, double>> History)>> histories)
    {
        var settings = s.Stages ?? DemoPreferenceStages.For(s.Quick);
        var files = DemoPreferenceStages.BuildPairs(sft, tokenizer, settings, seed, Path.Combine(s.Output, "pairs"));
        if (files.Pairs == 0)
        {
            const string none = "the SFT model's samples gave no usable pairs (see the counts above)";
            return (new StageOutcome(null, none, files.Seconds), new StageOutcome(null, none, 0), new StageOutcome(null, none, 0));
        }
        var pairStage = new StageOutcome(null, null, files.Seconds, files.Pairs);
        var step = DemoPreferenceStages.Train("c. Step-DPO", sft, tokenizer, files.StepPairs, files.Pairs, settings, seed,
            Path.Combine(s.Output, $"step-dpo-metrics-seed{seed}.jsonl"));
        var zip = Path.Combine(s.Output, seed == 1 ? "step-dpo.zip" : $"step-dpo-seed{seed}.zip");
        new MLContext(seed).Model.Save(step.Scorer, null, zip);
        AnsiConsole.MarkupLine($"   the Step-DPO step scorer is saved as an ML.NET model: [blue]{Markup.Escape(zip)}[/]");
        var answer = DemoPreferenceStages.Train("d. DPO", sft, tokenizer, files.AnswerPairs, files.Pairs, settings, seed,
            Path.Combine(s.Output, $"dpo-metrics-seed{seed}.jsonl"));
        Record(histories, "step_dpo", seed, step.History);
        Record(histories, "dpo", seed, answer.History);
        return (pairStage,
            new StageOutcome(step.Scorer.Scorer.Policy, null, step.Seconds, step.Pairs),
            new StageOutcome(answer.Scorer.Scorer.Policy, null, answer.Seconds, answer.Pairs));
    }

    private static void Record(Dictionary<string, List<(int Seed, List<Dictionary<string, double>> History)>> histories, string method, int seed,
        List<Dictionary<string, double>> history)
    {
        if (!histories.TryGetValue(method, out var list)) histories[method] = list = new();
        list.Add((seed, history));
    }

    // ---- e. Evaluation --------------------------------------------------------------------------------------

    private static (List<(string Method, AnswerMetrics Metrics)> Metrics, double Seconds) StageEvaluate(
        IReadOnlyList<(string Method, Qwen2ForCausalLM Model)> models, ByteLevelBpeTokenizer tokenizer, int heldOut, int seed, string output)
    {
        var clock = Stopwatch.StartNew();
        var problems = ArithmeticSftRecipe.HeldOut(ArithmeticSftRecipe.DemoTask, heldOut, HeldOutSeed(seed));
        var results = new List<(string, AnswerMetrics)>();
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var tasks = models.Select(m => ctx.AddTask($"e. evaluate {m.Method} (greedy, {problems.Count} held-out)", maxValue: problems.Count, autoStart: false)).ToList();
                for (int i = 0; i < models.Count; i++)
                {
                    var task = tasks[i];
                    task.StartTask();
                    var r = GreedyAccuracy.Evaluate(models[i].Model, tokenizer, ArithmeticSftRecipe.Prompt, problems,
                        batchSize: 64, maxNewTokens: 160, progress: new InlineProgress<int>(done => task.Value = done));
                    task.Value = problems.Count;
                    results.Add((models[i].Method, r.Metrics));
                    WriteSolutions(Path.Combine(output, $"eval-{models[i].Method}-seed{seed}.jsonl"), r.Solutions);
                }
            });
        AnsiConsole.MarkupLine($"[green]e. evaluation[/]: {models.Count} model(s) × {problems.Count} held-out problems in {clock.Elapsed.TotalSeconds:F1} s");
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
                table.AddRow(label, "[grey]not yet[/]", "", "", "", "");
                continue;
            }
            var (acc, lo, hi) = Pooled(runs);
            string third = s.Seeds > 1
                ? string.Create(CultureInfo.InvariantCulture, $"{StdDev(runs.Select(r => r.Metrics.Accuracy)) * 100:F1} pts")
                : $"{runs[0].Metrics.Correct}/{runs[0].Metrics.Count}";
            table.AddRow(label, string.Create(CultureInfo.InvariantCulture, $"{acc * 100:F1}%"),
                string.Create(CultureInfo.InvariantCulture, $"{lo * 100:F1}–{hi * 100:F1}%"), third,
                method == "sft" ? "—" : pairs.ToString(CultureInfo.InvariantCulture),
                method == "sft" && sftSource != "retrained"
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

    private static long Parameters(Qwen2ForCausalLM m) => m.parameters().Sum(p => p.numel());

}
