using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Training;
using Spectre.Console;
using Microsoft.ML.StepDpo.Sampling;

namespace StepDpo.Tools.Study;

/// <summary>
/// The demo's stages b–d as the study runs them: self-generated step pairs from the SFT model's own mistakes
/// (locator pipeline: arithmetic verifier, then rollouts; rectification from the correct prefix), then Step-DPO or
/// answer-level DPO on them. Seeds, problems and settings are the demo's (docs/demo.md), so the study's runs
/// reproduce and extend its numbers.
/// </summary>
internal static class PreferenceStages
{
    /// <summary>The committed SFT model of the built-in task (src/Samples/Assets/sft-arithmetic, copied next to the tools).</summary>
    public static string CommittedSftDirectory => Path.Combine(AppContext.BaseDirectory, "Assets", "sft-arithmetic");

    /// <summary>Seed of the held-out problems of a run with <paramref name="seed"/> (the demo's).</summary>
    public static int HeldOutSeed(int seed) => 1000 + seed;

    /// <summary>Settings of stages b–d.</summary>
    internal sealed record Settings(int Problems, int SamplesPerProblem, int Rollouts, int Rectifications, int Epochs, int BatchSize,
        double LearningRate, double Beta, double NllWeight = 0, ArithmeticTaskOptions? Task = null, int LoraRank = 0)
    {
        /// <summary>The task the problems come from (default <see cref="ArithmeticSftRecipe.DemoTask"/>).</summary>
        public ArithmeticTaskOptions TaskOptions => Task ?? ArithmeticSftRecipe.DemoTask;

        /// <summary>Adapters when <see cref="LoraRank"/> &gt; 0: all projections, α = 2·rank, no dropout.</summary>
        public LoraSettings Lora => new() { Rank = Math.Max(1, LoraRank), Alpha = 2 * Math.Max(1, LoraRank), Dropout = 0 };
    }

    /// <summary>The demo's full-size settings.</summary>
    public static Settings Defaults { get; } =
        new(Problems: 240, SamplesPerProblem: 6, Rollouts: 6, Rectifications: 6, Epochs: 3, BatchSize: 8, LearningRate: 2e-5, Beta: 0.4);

    internal sealed record PairFiles(string StepPairs, string AnswerPairs, StepPreferenceReport Report, int Pairs, double Seconds);

    /// <summary>
    /// The training problems stage b samples a seed's pairs from: a different seed of the training split than the
    /// SFT model's, so its mistakes are honest. The first n of a longer draw are the same n problems.
    /// </summary>
    public static IReadOnlyList<ArithmeticProblem> SourceProblems(ArithmeticTaskOptions task, int count, int seed) =>
        ArithmeticTask.Generate(task, count, seed: 1000 + seed, TaskSplit.Train);

    /// <summary>b. Builds step pairs and answer pairs from the SFT model's samples on training problems.</summary>
    /// <param name="samplingSeed">Seed of the samples (default <paramref name="seed"/>, which picks the problems): later
    /// rounds of an iterated run sample the same problems anew.</param>
    public static PairFiles BuildPairs(Qwen2ForCausalLM sft, ByteLevelBpeTokenizer tokenizer, Settings s, int seed, string dir, int? samplingSeed = null)
    {
        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(dir);
        string stepPath = Path.Combine(dir, $"step-pairs-seed{seed}.jsonl"), answerPath = Path.Combine(dir, $"answer-pairs-seed{seed}.jsonl");
        var problems = SourceProblems(s.TaskOptions, s.Problems, seed);
        var ml = new MLContext(seed);
        var data = ml.Data.LoadFromEnumerable(problems.Select(p => new ProblemRow { Problem = p.Question, Answer = p.Answer.ToString(System.Globalization.CultureInfo.InvariantCulture), Id = p.Id }));
        using var policy = new LocalModelCompletionSource(sft, tokenizer, ArithmeticSftRecipe.Prompt, maxBatchRows: SamplingBenchmark.NewRows, ownsModel: false);
        var options = new StepPreferenceOptions
        {
            Policy = policy, ProblemColumnName = "Problem", AnswerColumnName = "Answer", IdColumnName = "Id",
            SamplesPerProblem = s.SamplesPerProblem, RolloutsPerPrefix = s.Rollouts, RectificationSamples = s.Rectifications,
            Sampling = new SamplingSettings { Temperature = 0.8, TopP = 0.95, MaxNewTokens = 160, Seed = samplingSeed ?? seed },
            MaxConcurrency = SamplingBenchmark.NewConcurrency, OutputPath = stepPath, AnswerPairsPath = answerPath, Dataset = "arithmetic", Seed = samplingSeed ?? seed,
        };
        StepPreferenceReport report = null!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask($"b. step pairs ({problems.Count} problems)", maxValue: problems.Count);
                report = ml.StepDpo().BuildStepPreferences(data, options, new InlineProgress<StepPreferenceReport>(r =>
                {
                    task.Value = r.Problems;
                    task.Description = $"b. step pairs: {r.Wrong} wrong of {r.Sampled}, {r.Located} located, {r.Pairs} pairs";
                }));
            });
        int pairs = (int)Math.Min(report.Pairs, report.AnswerPairs);
        AnsiConsole.MarkupLine($"[green]b. step pairs[/]: {report.Problems} problems, {report.Sampled} samples, {report.Wrong} wrong, " +
                               $"{report.Located} located, {report.Rectified} rectified, {report.Pairs} step pairs, {report.AnswerPairs} answer pairs; " +
                               $"{pairs} of each used ({clock.Elapsed.TotalSeconds:F0} s)");
        return new PairFiles(stepPath, answerPath, report, pairs, clock.Elapsed.TotalSeconds);
    }

    private sealed class ProblemRow
    {
        public string Problem { get; set; } = "";
        public string Answer { get; set; } = "";
        public string Id { get; set; } = "";
    }

    internal sealed record Trained(StepScoringTransformer Scorer, List<Dictionary<string, double>> History, double Seconds, int Pairs);

    /// <summary>c./d. Trains from the SFT model on the first <paramref name="pairs"/> rows of a Math-Step-DPO-10K file.</summary>
    public static Trained Train(string label, Qwen2ForCausalLM sft, ByteLevelBpeTokenizer tokenizer, string pairsPath, int pairs, Settings s, int seed, string metricsPath)
    {
        var clock = Stopwatch.StartNew();
        var ml = new MLContext(seed);
        var data = ml.Data.TakeRows(ml.Data.LoadFromStepDpoJsonl(pairsPath), pairs);
        var options = new StepDpoTrainer.Options
        {
            BaseModel = sft, BaseTokenizer = tokenizer, Template = ArithmeticSftRecipe.Prompt, Beta = s.Beta, LearningRate = s.LearningRate,
            Epochs = s.Epochs, BatchSize = s.BatchSize, WarmupRatio = 0.1, Seed = seed, LogInterval = 1, MaxLength = 512, MaxPromptLength = 384,
            MetricsPath = metricsPath, NllWeight = s.NllWeight,
            UseLora = s.LoraRank > 0, Lora = s.Lora,
        };
        var trainer = ml.StepDpo().Trainers.StepDpo(options);
        StepScoringTransformer scorer = null!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask($"{label} ({pairs} pairs)");
                options.Progress = new InlineProgress<TrainingProgress>(p =>
                {
                    task.MaxValue = p.TotalSteps;
                    task.Value = p.Step;
                    task.Description = $"{label}: step {p.Step}/{p.TotalSteps}, loss {p.Metrics.GetValueOrDefault("loss"):F3}, margin {p.Metrics.GetValueOrDefault("rewards/margins"):F2}";
                });
                scorer = trainer.Fit(data);
            });
        var report = trainer.LastReport!;
        var last = report.History.LastOrDefault();
        AnsiConsole.MarkupLine($"[green]{Markup.Escape(label)}[/]: {report.ExamplesUsed} pairs, final loss {last?.GetValueOrDefault("loss"):F3}, " +
                               $"reward margin {last?.GetValueOrDefault("rewards/margins"):F2}, accuracy {last?.GetValueOrDefault("rewards/accuracies"):F2} ({clock.Elapsed.TotalSeconds:F0} s)");
        return new Trained(scorer, report.History.Select(r => r.ToDictionary()).ToList(), clock.Elapsed.TotalSeconds, report.ExamplesUsed);
    }
}
