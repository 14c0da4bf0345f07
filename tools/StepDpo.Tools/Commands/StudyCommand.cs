using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Training;
using Spectre.Console;
using StepDpo.Tools.Study;
using TorchSharp;

namespace StepDpo.Tools;

/// <summary>
/// The investigation behind the demo's numbers: builds (or reuses) one seed's self-generated pairs, then trains
/// Step-DPO / DPO under several settings from the same SFT model and evaluates each on the held-out problems and on
/// the problems the pairs came from. Every run is appended to a JSONL file so the README's table can be rebuilt.
/// </summary>
internal sealed class StudyCommand : IToolCommand
{
    public Command Build()
    {
        var output = new Option<DirectoryInfo>("--output") { Description = "Output folder.", DefaultValueFactory = _ => new DirectoryInfo("artifacts/study") };
        var seed = new Option<int>("--seed") { Description = "Seed of the pairs, the training and the held-out set.", DefaultValueFactory = _ => 1 };
        var problems = new Option<int>("--problems") { Description = "Training problems sampled for pairs.", DefaultValueFactory = _ => 240 };
        var heldOut = new Option<int>("--heldout") { Description = "Held-out problems.", DefaultValueFactory = _ => 500 };
        var sftModel = new Option<DirectoryInfo?>("--sft-model") { Description = "SFT model folder (default: the committed one)." };
        var minSteps = new Option<int>("--min-steps") { Description = "Override the demo task's fewest steps (0 = the demo task's)." };
        var maxSteps = new Option<int>("--max-steps") { Description = "Override the demo task's most steps (0 = the demo task's)." };
        var maxValue = new Option<int>("--max-value") { Description = "Override the demo task's bound on every computed number (0 = the demo task's)." };
        var maxAddend = new Option<int>("--max-addend") { Description = "Override the demo task's largest added/taken number (0 = the demo task's)." };
        var runs = new Option<string[]>("--run")
        {
            Description = "One training run: 'step|dpo|rft|gold[,lr=2e-5][,epochs=3][,beta=0.4][,nll=0][,pairs=budget|all|N][,batch=8][,lora=RANK][,cut=whole|first]'. " +
                "cut=first ends each rejected response at its first character that differs from the chosen one. " +
                "rft: SFT on the step pairs' chosen solutions; gold: SFT on the gold solutions of the pairs' source problems " +
                "(pairs=N may exceed --problems: more problems are drawn the same way). Repeatable.",
            AllowMultipleArgumentsPerToken = true,
        };
        var cmd = new Command("study", "Train Step-DPO / DPO under several settings on one seed's pairs and evaluate each (the README's investigation).")
        {
            output, seed, problems, heldOut, sftModel, runs, minSteps, maxSteps, maxValue, maxAddend,
        };
        cmd.SetAction(p =>
        {
            var task = ArithmeticSftRecipe.DemoTask;
            if (p.GetValue(minSteps) > 0) task.MinSteps = p.GetValue(minSteps);
            if (p.GetValue(maxSteps) > 0) task.MaxSteps = p.GetValue(maxSteps);
            if (p.GetValue(maxValue) > 0) task.MaxValue = p.GetValue(maxValue);
            if (p.GetValue(maxAddend) > 0) task.MaxAddend = p.GetValue(maxAddend);
            return Run(p.GetValue(output)!.FullName, p.GetValue(seed), p.GetValue(problems), p.GetValue(heldOut),
                p.GetValue(sftModel)?.FullName, p.GetValue(runs) ?? Array.Empty<string>(), task);
        });
        return cmd;
    }

    internal sealed record RunSpec(string Method, double LearningRate, int Epochs, double Beta, double NllWeight, string Pairs, int BatchSize, int LoraRank = 0, string Cut = "whole")
    {
        public static RunSpec Parse(string text)
        {
            var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0 || parts[0] is not ("step" or "dpo" or "rft" or "gold"))
                throw new ArgumentException($"A run starts with 'step', 'dpo', 'rft' or 'gold': '{text}'.");
            var spec = new RunSpec(parts[0], 2e-5, 3, 0.4, 0, "budget", 8);
            foreach (var kv in parts.Skip(1))
            {
                var (k, v) = kv.Split('=', 2) is [var a, var b] ? (a, b) : throw new ArgumentException($"Expected key=value, got '{kv}' in '{text}'.");
                double d() => double.Parse(v, CultureInfo.InvariantCulture);
                spec = k switch
                {
                    "lr" => spec with { LearningRate = d() },
                    "epochs" => spec with { Epochs = (int)d() },
                    "beta" => spec with { Beta = d() },
                    "nll" => spec with { NllWeight = d() },
                    "pairs" when v is "budget" or "all" || (int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int c) && c > 0) => spec with { Pairs = v },
                    "pairs" => throw new ArgumentException($"pairs is 'budget', 'all' or a positive count, got '{v}' in '{text}'."),
                    "batch" => spec with { BatchSize = (int)d() },
                    "lora" => spec with { LoraRank = (int)d() },
                    "cut" when v is "whole" or "first" => spec with { Cut = v },
                    "cut" => throw new ArgumentException($"cut is 'whole' or 'first', got '{v}' in '{text}'."),
                    _ => throw new ArgumentException($"Unknown setting '{k}' in '{text}'."),
                };
            }
            return spec;
        }

        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"{Method} lr={LearningRate:G3} ep={Epochs} β={Beta} nll={NllWeight} pairs={Pairs} batch={BatchSize}{(LoraRank > 0 ? $" lora={LoraRank}" : "")}{(Cut == "first" ? " cut=first" : "")}");
    }

    private static int Run(string output, int seed, int problemCount, int heldOutCount, string? sftDir, string[] runTexts, ArithmeticTaskOptions task)
    {
        TorchRuntime.EnsureLoaded();
        torch.set_num_threads(1);
        var specs = runTexts.Select(RunSpec.Parse).ToList();
        Directory.CreateDirectory(output);
        var (sft, tokenizer) = ArithmeticSftRecipe.Load(sftDir ?? PreferenceStages.CommittedSftDirectory);
        using var _ = sft;
        var settings = PreferenceStages.Defaults with { Problems = problemCount, Task = task };

        // Pairs: reused when this seed and problem count were built before (building is the slow part).
        string pairDir = Path.Combine(output, $"pairs-p{problemCount}");
        string stepPath = Path.Combine(pairDir, $"step-pairs-seed{seed}.jsonl"), answerPath = Path.Combine(pairDir, $"answer-pairs-seed{seed}.jsonl");
        string donePath = Path.Combine(pairDir, $"done-seed{seed}");
        if (!File.Exists(donePath))
        {
            foreach (var f in new[] { stepPath, answerPath }) if (File.Exists(f)) File.Delete(f);
            PreferenceStages.BuildPairs(sft, tokenizer, settings, seed, pairDir);
            File.WriteAllText(donePath, "");
        }
        int stepPairs = File.ReadLines(stepPath).Count(), answerPairs = File.ReadLines(answerPath).Count();
        int budget = Math.Min(stepPairs, answerPairs);
        AnsiConsole.MarkupLine($"pairs: {stepPairs} step, {answerPairs} answer (budget {budget})");

        // The problems the pairs came from (same generator call as stage b), and the held-out ones.
        var source = ArithmeticSftRecipe.ForEvaluation(PreferenceStages.SourceProblems(task, problemCount, seed));
        var heldOutProblems = ArithmeticTask.Generate(task, heldOutCount, PreferenceStages.HeldOutSeed(seed), TaskSplit.HeldOut);
        var heldOut = ArithmeticSftRecipe.ForEvaluation(heldOutProblems);
        var gold = heldOutProblems.Select(p => p.Steps).ToList();

        string resultsPath = Path.Combine(output, "study.jsonl");
        var (sftHeld, sftSource, sftErrors) = Evaluate(sft, tokenizer, heldOut, source, gold);
        Append(resultsPath, new { seed, problems = problemCount, method = "sft", heldout = sftHeld, source = sftSource, heldout_errors = sftErrors });
        AnsiConsole.MarkupLine($"SFT held-out errors: {Describe(sftErrors)}");
        AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"SFT: held-out {sftHeld * 100:F1}%, source problems {sftSource * 100:F1}%"));

        // Controls, plain SFT with the preference runs' optimizer settings. rft: the chosen side of the same step pairs
        // (the rectified solution, whole, then EOS) — does fine-tuning on these few examples move held-out accuracy at
        // all? gold: the generator's gold solutions of the pairs' own source problems — what the same problems are worth
        // as ordinary supervised data, and (pairs=N beyond --problems) how many gold solutions a gain of a few points costs.
        void RunControl(RunSpec spec, List<ChosenRow> rows, PreferenceStages.Settings s)
        {
            var clock = Stopwatch.StartNew();
            using var tuned = TrainSft(sft, tokenizer, rows, s, seed);
            var (h, src, errors) = Evaluate(tuned, tokenizer, heldOut, source, gold);
            Append(resultsPath, new { seed, problems = problemCount, method = spec.Method, lr = spec.LearningRate, epochs = spec.Epochs,
                batch = spec.BatchSize, lora = spec.LoraRank, pairs = rows.Count, heldout = h, source = src, heldout_errors = errors, seconds = clock.Elapsed.TotalSeconds });
            AnsiConsole.MarkupLine($"  held-out errors: {Describe(errors)}");
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"[bold]{Markup.Escape(spec.ToString())}[/] ({rows.Count} {(spec.Method == "rft" ? "chosen" : "gold")} solutions): held-out {h * 100:F1}% (SFT {sftHeld * 100:F1}%), source {src * 100:F1}% (SFT {sftSource * 100:F1}%)"));
        }

        foreach (var spec in specs)
        {
            var clock = Stopwatch.StartNew();
            var s = settings with { LearningRate = spec.LearningRate, Epochs = spec.Epochs, Beta = spec.Beta, NllWeight = spec.NllWeight, BatchSize = spec.BatchSize, LoraRank = spec.LoraRank };
            if (spec.Method == "gold")
            {
                RunControl(spec, GoldSolutions(task, seed, GoldCount(spec.Pairs, budget, problemCount)), s);
                continue;
            }
            string path = spec.Method == "dpo" ? answerPath : stepPath;
            int available = spec.Method == "dpo" ? answerPairs : stepPairs;
            int n = spec.Pairs switch { "budget" => budget, "all" => available, var x => Math.Min(available, int.Parse(x, CultureInfo.InvariantCulture)) };
            if (n == 0)
            {
                AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(spec.ToString())}: no pairs to train on (see the counts above); skipped[/]");
                continue;
            }
            if (spec.Method == "rft")
            {
                RunControl(spec, ChosenSolutions(stepPath, n), s);
                continue;
            }
            if (spec.Cut == "first") path = CutAtFirstDifference(path, Path.Combine(output, "cut-" + Path.GetFileName(path)));
            var trained = PreferenceStages.Train(spec.ToString(), sft, tokenizer, path, n, s, seed, Path.Combine(output, "metrics-last.jsonl"));
            using var policy = trained.Scorer.Scorer.Policy;
            var (held, src, errors) = Evaluate(policy, tokenizer, heldOut, source, gold);
            var lastEpoch = trained.History.Skip(trained.History.Count * (spec.Epochs - 1) / Math.Max(1, spec.Epochs)).ToList();
            double Mean(string key) => lastEpoch.Count == 0 ? double.NaN : lastEpoch.Average(h => h.GetValueOrDefault(key));
            Append(resultsPath, new
            {
                seed, problems = problemCount, method = spec.Method, lr = spec.LearningRate, epochs = spec.Epochs, beta = spec.Beta, nll = spec.NllWeight,
                batch = spec.BatchSize, lora = spec.LoraRank, cut = spec.Cut, pairs = n, heldout = held, source = src, heldout_errors = errors, seconds = clock.Elapsed.TotalSeconds,
                last_epoch_margin = Mean("rewards/margins"), last_epoch_accuracy = Mean("rewards/accuracies"),
                last_epoch_chosen = Mean("rewards/chosen"), last_epoch_rejected = Mean("rewards/rejected"),
            });
            AnsiConsole.MarkupLine(string.Create(CultureInfo.InvariantCulture,
                $"[bold]{Markup.Escape(spec.ToString())}[/] ({n} pairs): held-out {held * 100:F1}% (SFT {sftHeld * 100:F1}%), source {src * 100:F1}% (SFT {sftSource * 100:F1}%); " +
                $"last epoch margin {Mean("rewards/margins"):F3}, acc {Mean("rewards/accuracies"):F2}, chosen {Mean("rewards/chosen"):F3}, rejected {Mean("rewards/rejected"):F3}"));
            AnsiConsole.MarkupLine($"  held-out errors: {Describe(errors)}");
        }
        return 0;
    }

    /// <summary>
    /// The "which tokens of the rejected side do the harm" probe: every rejected response is cut just after its
    /// first character that differs from the chosen one. The shared prefix has the same log-probability under
    /// both sides, so the preference then acts on the first wrong token only, not on the (often correct)
    /// arithmetic that follows it. With the character-level tokenizer a character is a token.
    /// </summary>
    internal static string CutAtFirstDifference(string source, string destination)
    {
        using var writer = new StreamWriter(destination);
        foreach (var line in File.ReadLines(source))
        {
            var o = JsonNode.Parse(line)!.AsObject();
            string chosen = o["chosen"]!.GetValue<string>(), rejected = o["rejected"]!.GetValue<string>();
            int i = 0;
            while (i < chosen.Length && i < rejected.Length && chosen[i] == rejected[i]) i++;
            if (i == rejected.Length)
                throw new InvalidDataException($"A rejected response is a prefix of its chosen one: '{rejected}' / '{chosen}'.");
            o["rejected"] = rejected[..(i + 1)];
            writer.WriteLine(o.ToJsonString());
        }
        return destination;
    }

    private sealed class ChosenRow
    {
        public string prompt { get; set; } = "";
        public string response { get; set; } = "";
    }

    /// <summary>gold's problem count: the pair budget by default (as many examples as the preference runs get),
    /// every source problem for "all", or a number (which may exceed the source problems).</summary>
    private static int GoldCount(string pairs, int budget, int problemCount) => pairs switch
    {
        "budget" => Math.Max(1, budget),
        "all" => problemCount,
        var x => int.Parse(x, CultureInfo.InvariantCulture), // RunSpec.Parse accepts positive counts only
    };

    /// <summary>rft's examples: the chosen side of the first <paramref name="rows"/> step pairs, whole.</summary>
    private static List<ChosenRow> ChosenSolutions(string stepPairsPath, int rows) =>
        File.ReadLines(stepPairsPath).Take(rows).Select(line =>
        {
            var o = JsonNode.Parse(line)!;
            // The SFT trainer's prompt is the filled template without the separator; the response carries it.
            return new ChosenRow
            {
                prompt = o["prompt"]!.GetValue<string>(),
                response = ArithmeticSftRecipe.Prompt.Separator + o["initial_reason_steps"]!.GetValue<string>() + o["full_chosen"]!.GetValue<string>(),
            };
        }).ToList();

    /// <summary>
    /// gold's examples: the first <paramref name="count"/> training problems drawn exactly as stage b draws its
    /// source problems (so the first --problems of them are the pairs' own problems), with gold solutions.
    /// </summary>
    private static List<ChosenRow> GoldSolutions(ArithmeticTaskOptions task, int seed, int count) =>
        PreferenceStages.SourceProblems(task, count, seed)
            .Select(p => new ChosenRow { prompt = p.Question, response = ArithmeticSftRecipe.Prompt.Separator + p.Solution }).ToList();

    private static Qwen2ForCausalLM TrainSft(Qwen2ForCausalLM sft, ByteLevelBpeTokenizer tokenizer,
        List<ChosenRow> examples, PreferenceStages.Settings s, int seed)
    {
        var ml = new MLContext(seed);
        var options = new SftTrainer.Options
        {
            BaseModel = sft, BaseTokenizer = tokenizer, Template = ArithmeticSftRecipe.Prompt, LearningRate = s.LearningRate, Epochs = s.Epochs,
            BatchSize = s.BatchSize, WarmupRatio = 0.1, Seed = seed, MaxLength = 512,
            UseLora = s.LoraRank > 0, Lora = s.Lora,
        };
        var transformer = ml.StepDpo().Trainers.Sft(options).Fit(ml.Data.LoadFromEnumerable(examples));
        return transformer.Model;
    }

    private static (double HeldOut, double Source, Dictionary<string, int> HeldOutErrors) Evaluate(Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer,
        IReadOnlyList<EvaluationProblem> heldOut, IReadOnlyList<EvaluationProblem> source, IReadOnlyList<IReadOnlyList<string>> heldOutGold)
    {
        var h = GreedyAccuracy.Evaluate(model, tokenizer, ArithmeticSftRecipe.Prompt, heldOut, batchSize: 64, maxNewTokens: 160);
        var s = GreedyAccuracy.Evaluate(model, tokenizer, ArithmeticSftRecipe.Prompt, source, batchSize: 64, maxNewTokens: 160);
        var errors = ArithmeticErrorAnatomy.Count(heldOutGold, h.Solutions.Select(x => (x.Solution, x.Correct)).ToList());
        return (h.Metrics.Accuracy, s.Metrics.Accuracy, errors);
    }

    private static string Describe(Dictionary<string, int> errors) =>
        string.Join(", ", errors.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key} {kv.Value}"));

    private static void Append(string path, object row) => File.AppendAllText(path, JsonSerializer.Serialize(row) + "\n");
}
