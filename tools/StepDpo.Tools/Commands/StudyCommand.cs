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
        var heldOut = new Option<int>("--heldout") { Description = "Held-out problems (the test set: reported, never used to choose).", DefaultValueFactory = _ => 500 };
        var validation = new Option<int>("--validation")
        {
            Description = "Validation problems (held-out split, another seed, none of them in the test set): what settings are chosen on.",
            DefaultValueFactory = _ => 500,
        };
        var sourceEval = new Option<int>("--source-eval") { Description = "How many of the pool's problems to evaluate each model on (0 = none).", DefaultValueFactory = _ => 500 };
        var sftModel = new Option<DirectoryInfo?>("--sft-model") { Description = "SFT model folder (default: the committed one)." };
        var minSteps = new Option<int>("--min-steps") { Description = "Override the demo task's fewest steps (0 = the demo task's)." };
        var maxSteps = new Option<int>("--max-steps") { Description = "Override the demo task's most steps (0 = the demo task's)." };
        var maxValue = new Option<int>("--max-value") { Description = "Override the demo task's bound on every computed number (0 = the demo task's)." };
        var maxAddend = new Option<int>("--max-addend") { Description = "Override the demo task's largest added/taken number (0 = the demo task's)." };
        var runs = new Option<string[]>("--run")
        {
            Description = "One training run: 'step|dpo|rft|gold[,lr=2e-5][,epochs=3][,beta=0.4][,nll=0][,pairs=budget|all|N][,batch=8][,lora=RANK][,cut=whole|first][,rounds=1]'. " +
                "rounds=K (step, dpo, rft): K iterations, each sampling new pairs on the same pool problems from the previous round's model and training " +
                "from it (it is also the next reference), as Iterative RPO does. " +
                "cut=first ends each rejected response at its first character that differs from the chosen one. " +
                "rft: SFT on the step pairs' chosen solutions; gold: SFT on the gold solutions of the pairs' source problems " +
                "(pairs=N may exceed --problems: more problems are drawn the same way). Repeatable.",
            AllowMultipleArgumentsPerToken = true,
        };
        var cmd = new Command("study", "Train Step-DPO / DPO under several settings on one seed's pairs and evaluate each (the README's investigation).")
        {
            output, seed, problems, heldOut, validation, sourceEval, sftModel, runs, minSteps, maxSteps, maxValue, maxAddend,
        };
        cmd.SetAction(p =>
        {
            var task = ArithmeticSftRecipe.DemoTask;
            if (p.GetValue(minSteps) > 0) task.MinSteps = p.GetValue(minSteps);
            if (p.GetValue(maxSteps) > 0) task.MaxSteps = p.GetValue(maxSteps);
            if (p.GetValue(maxValue) > 0) task.MaxValue = p.GetValue(maxValue);
            if (p.GetValue(maxAddend) > 0) task.MaxAddend = p.GetValue(maxAddend);
            return Run(p.GetValue(output)!.FullName, p.GetValue(seed), p.GetValue(problems), p.GetValue(heldOut), p.GetValue(validation), p.GetValue(sourceEval),
                p.GetValue(sftModel)?.FullName, p.GetValue(runs) ?? Array.Empty<string>(), task);
        });
        return cmd;
    }

    internal sealed record RunSpec(string Method, double LearningRate, int Epochs, double Beta, double NllWeight, string Pairs, int BatchSize, int LoraRank = 0, string Cut = "whole", int Rounds = 1)
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
                    "rounds" when int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int r) && r > 0 => spec with { Rounds = r },
                    "rounds" => throw new ArgumentException($"rounds is a positive count, got '{v}' in '{text}'."),
                    _ => throw new ArgumentException($"Unknown setting '{k}' in '{text}'."),
                };
            }
            return spec;
        }

        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"{Method} lr={LearningRate:G3} ep={Epochs} β={Beta} nll={NllWeight} pairs={Pairs} batch={BatchSize}{(LoraRank > 0 ? $" lora={LoraRank}" : "")}{(Cut == "first" ? " cut=first" : "")}{(Rounds > 1 ? $" rounds={Rounds}" : "")}");
    }

    private static int Run(string output, int seed, int problemCount, int heldOutCount, int validationCount, int sourceEvalCount, string? sftDir, string[] runTexts, ArithmeticTaskOptions task)
    {
        TorchRuntime.EnsureLoaded();
        torch.set_num_threads(1);
        var specs = runTexts.Select(RunSpec.Parse).ToList();
        if (specs.FirstOrDefault(x => x.Rounds > 1 && x.Method == "gold") is { } bad)
            throw new ArgumentException($"rounds applies to step, dpo and rft runs, not to gold: '{bad}'.");
        Directory.CreateDirectory(output);
        var (sft, tokenizer) = ArithmeticSftRecipe.Load(sftDir ?? PreferenceStages.CommittedSftDirectory);
        using var _ = sft;
        var settings = PreferenceStages.Defaults with { Problems = problemCount, Task = task };

        // Pairs: reused when this seed and problem count were built before (building is the slow part).
        string pairDir = Path.Combine(output, $"pairs-p{problemCount}");
        var firstRound = EnsurePairs(sft, tokenizer, settings, seed, samplingSeed: seed, pairDir);
        AnsiConsole.MarkupLine($"pairs: {firstRound.StepPairs} step, {firstRound.AnswerPairs} answer (budget {firstRound.Budget})");

        // The problems the pairs came from (same generator call as stage b), the validation problems settings are
        // chosen on, and the held-out (test) problems, which are only reported.
        var sourceProblems = PreferenceStages.SourceProblems(task, problemCount, seed);
        var source = ArithmeticSftRecipe.ForEvaluation(sourceProblems.Take(sourceEvalCount));
        var heldOutProblems = ArithmeticTask.Generate(task, heldOutCount, PreferenceStages.HeldOutSeed(seed), TaskSplit.HeldOut);
        var validation = ArithmeticSftRecipe.ForEvaluation(ValidationProblems(task, validationCount, seed, heldOutProblems));
        var sets = new EvaluationSets(ArithmeticSftRecipe.ForEvaluation(heldOutProblems), validation, source, heldOutProblems.Select(p => p.Steps).ToList());

        string resultsPath = Path.Combine(output, "study.jsonl");
        var sftScores = Evaluate(sft, tokenizer, sets);
        Append(resultsPath, new
        {
            seed, problems = problemCount, method = "sft", heldout = sftScores.HeldOut, validation = sftScores.Validation, source = sftScores.Source,
            heldout_n = sets.HeldOut.Count, validation_n = sets.Validation.Count, source_n = sets.Source.Count, heldout_errors = sftScores.Errors,
        });
        AnsiConsole.MarkupLine($"SFT held-out errors: {Describe(sftScores.Errors)}");
        AnsiConsole.MarkupLine($"SFT: {sftScores}");

        foreach (var spec in specs)
        {
            var s = settings with { LearningRate = spec.LearningRate, Epochs = spec.Epochs, Beta = spec.Beta, NllWeight = spec.NllWeight, BatchSize = spec.BatchSize, LoraRank = spec.LoraRank };
            if (spec.Method == "gold")
            {
                // gold: the generator's gold solutions of the pairs' own source problems, plain SFT with the preference
                // runs' optimizer settings — what the same problems are worth as ordinary supervised data.
                var clock = Stopwatch.StartNew();
                int goldCount = GoldCount(spec.Pairs, firstRound.Budget, problemCount);
                using var tuned = TrainSft(sft, tokenizer, GoldSolutions(task, seed, goldCount), s, seed);
                Report(spec, round: 1, pairs: goldCount, Evaluate(tuned, tokenizer, sets), clock, null);
                continue;
            }

            // Round 1 trains from the SFT model on the seed's shared pairs; round r > 1 samples new pairs on the same
            // pool problems from round r − 1's model and trains from it, with it as the reference (Iterative RPO).
            Qwen2ForCausalLM current = sft;
            for (int round = 1; round <= spec.Rounds; round++)
            {
                var clock = Stopwatch.StartNew();
                var files = round == 1 ? firstRound : EnsurePairs(current, tokenizer, settings, seed, samplingSeed: seed + 1000 * (round - 1),
                    Path.Combine(pairDir, $"{RunTag(spec)}-round{round}"));
                string path = spec.Method == "dpo" ? files.AnswerPath : files.StepPath;
                int available = spec.Method == "dpo" ? files.AnswerPairs : files.StepPairs;
                int n = spec.Pairs switch { "budget" => files.Budget, "all" => available, var x => Math.Min(available, int.Parse(x, CultureInfo.InvariantCulture)) };
                if (n == 0)
                {
                    AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(spec.ToString())} round {round}: no pairs to train on (see the counts above); stopped[/]");
                    break;
                }
                Qwen2ForCausalLM next;
                List<Dictionary<string, double>>? history = null;
                if (spec.Method == "rft")
                {
                    // rft: the chosen side of the step pairs (rectified solutions, each verified by its final answer),
                    // whole, then EOS: rejection-sampling fine-tuning on the model's own correct solutions.
                    next = TrainSft(current, tokenizer, ChosenSolutions(files.StepPath, n), s, seed);
                }
                else
                {
                    if (spec.Cut == "first") path = CutAtFirstDifference(path, Path.Combine(output, $"cut-r{round}-" + Path.GetFileName(path)));
                    var trained = PreferenceStages.Train($"{spec} round {round}", current, tokenizer, path, n, s, seed, Path.Combine(output, "metrics-last.jsonl"));
                    next = trained.Scorer.Scorer.Policy;
                    history = trained.History;
                }
                Report(spec, round, n, Evaluate(next, tokenizer, sets), clock, history);
                if (!ReferenceEquals(current, sft)) current.Dispose();
                current = next;
            }
            if (!ReferenceEquals(current, sft)) current.Dispose();
        }
        return 0;

        void Report(RunSpec spec, int round, int pairs, Scores scores, Stopwatch clock, List<Dictionary<string, double>>? history)
        {
            var lastEpoch = history?.Skip(history.Count * (spec.Epochs - 1) / Math.Max(1, spec.Epochs)).ToList() ?? new();
            double Mean(string key) => lastEpoch.Count == 0 ? double.NaN : lastEpoch.Average(h => h.GetValueOrDefault(key));
            Append(resultsPath, new
            {
                seed, problems = problemCount, method = spec.Method, round, rounds = spec.Rounds, lr = spec.LearningRate, epochs = spec.Epochs, beta = spec.Beta,
                nll = spec.NllWeight, batch = spec.BatchSize, lora = spec.LoraRank, cut = spec.Cut, pairs,
                heldout = scores.HeldOut, validation = scores.Validation, source = scores.Source,
                heldout_n = sets.HeldOut.Count, validation_n = sets.Validation.Count, source_n = sets.Source.Count,
                heldout_errors = scores.Errors, seconds = clock.Elapsed.TotalSeconds,
                last_epoch_margin = history is null ? (double?)null : Mean("rewards/margins"), last_epoch_accuracy = history is null ? (double?)null : Mean("rewards/accuracies"),
                last_epoch_chosen = history is null ? (double?)null : Mean("rewards/chosen"), last_epoch_rejected = history is null ? (double?)null : Mean("rewards/rejected"),
            });
            string margins = history is null ? "" : string.Create(CultureInfo.InvariantCulture, $"; last epoch margin {Mean("rewards/margins"):F3}, acc {Mean("rewards/accuracies"):F2}");
            AnsiConsole.MarkupLine($"[bold]{Markup.Escape(spec.ToString())}[/] round {round} ({pairs} pairs): {scores} (SFT: {sftScores}){margins}");
            AnsiConsole.MarkupLine($"  held-out errors: {Describe(scores.Errors)}");
        }
    }

    /// <summary>A file-name-safe tag of a run's settings (its later rounds' pairs are kept under it).</summary>
    private static string RunTag(RunSpec spec) => string.Create(CultureInfo.InvariantCulture,
        $"{spec.Method}-lr{spec.LearningRate:G3}-ep{spec.Epochs}-b{spec.Beta}-nll{spec.NllWeight}-{spec.Pairs}-bs{spec.BatchSize}{(spec.LoraRank > 0 ? $"-lora{spec.LoraRank}" : "")}{(spec.Cut == "first" ? "-cut" : "")}");

    private sealed record RoundPairs(string StepPath, string AnswerPath, int StepPairs, int AnswerPairs)
    {
        public int Budget => Math.Min(StepPairs, AnswerPairs);
    }

    /// <summary>Builds a model's step and answer pairs into <paramref name="dir"/>, or reuses them when a finished build is there.</summary>
    private static RoundPairs EnsurePairs(Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer, PreferenceStages.Settings settings, int seed, int samplingSeed, string dir)
    {
        string stepPath = Path.Combine(dir, $"step-pairs-seed{seed}.jsonl"), answerPath = Path.Combine(dir, $"answer-pairs-seed{seed}.jsonl");
        string donePath = Path.Combine(dir, $"done-seed{seed}");
        if (!File.Exists(donePath))
        {
            foreach (var f in new[] { stepPath, answerPath }) if (File.Exists(f)) File.Delete(f);
            PreferenceStages.BuildPairs(model, tokenizer, settings, seed, dir, samplingSeed);
            File.WriteAllText(donePath, "");
        }
        return new RoundPairs(stepPath, answerPath, File.ReadLines(stepPath).Count(), File.ReadLines(answerPath).Count());
    }

    /// <summary>
    /// Validation problems: the held-out split drawn with another seed, less any problem of the test set, so settings
    /// can be chosen without looking at the numbers that are reported.
    /// </summary>
    internal static IReadOnlyList<ArithmeticProblem> ValidationProblems(ArithmeticTaskOptions task, int count, int seed, IReadOnlyList<ArithmeticProblem> test)
    {
        if (count == 0) return Array.Empty<ArithmeticProblem>();
        var testQuestions = test.Select(p => p.Question).ToHashSet(StringComparer.Ordinal);
        var drawn = ArithmeticTask.Generate(task, count + test.Count, 7000 + seed, TaskSplit.HeldOut);
        var kept = drawn.Where(p => !testQuestions.Contains(p.Question)).Take(count).ToList();
        if (kept.Count < count) throw new InvalidOperationException($"Only {kept.Count} validation problems outside the test set; ask for fewer.");
        return kept;
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

    private sealed record EvaluationSets(IReadOnlyList<EvaluationProblem> HeldOut, IReadOnlyList<EvaluationProblem> Validation,
        IReadOnlyList<EvaluationProblem> Source, IReadOnlyList<IReadOnlyList<string>> HeldOutGold);

    /// <summary>Accuracies; null for a set that was not evaluated (JSON has no NaN).</summary>
    private sealed record Scores(double HeldOut, double? Validation, double? Source, Dictionary<string, int> Errors)
    {
        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"held-out {HeldOut * 100:F1}%, validation {(Validation is { } v ? $"{v * 100:F1}%" : "-")}, pool {(Source is { } s ? $"{s * 100:F1}%" : "-")}");
    }

    private static Scores Evaluate(Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer, EvaluationSets sets)
    {
        var h = Greedy(sets.HeldOut);
        var errors = ArithmeticErrorAnatomy.Count(sets.HeldOutGold, h.Solutions.Select(x => (x.Solution, x.Correct)).ToList());
        return new Scores(h.Metrics.Accuracy, Accuracy(sets.Validation), Accuracy(sets.Source), errors);

        GreedyEvaluationResult Greedy(IReadOnlyList<EvaluationProblem> problems) =>
            GreedyAccuracy.Evaluate(model, tokenizer, ArithmeticSftRecipe.Prompt, problems, batchSize: 64, maxNewTokens: 160);
        double? Accuracy(IReadOnlyList<EvaluationProblem> problems) => problems.Count == 0 ? null : Greedy(problems).Metrics.Accuracy;
    }

    private static string Describe(Dictionary<string, int> errors) =>
        string.Join(", ", errors.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key} {kv.Value}"));

    private static void Append(string path, object row) => File.AppendAllText(path, JsonSerializer.Serialize(row) + "\n");
}
