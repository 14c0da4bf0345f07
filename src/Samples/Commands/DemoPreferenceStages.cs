using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Tasks;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;
using Spectre.Console;

namespace StepDpo.Samples;

/// <summary>
/// Stages b–d of the demo: self-generated step pairs from the SFT model's own mistakes (locator pipeline:
/// arithmetic verifier, then rollouts; rectification from the correct prefix), then Step-DPO on the step pairs
/// and answer-level DPO on whole-solution pairs from the same samples, with the same number of pairs and
/// optimizer steps. Every stage starts from the SFT model's folder, which is never modified.
/// </summary>
internal static class DemoPreferenceStages
{
    /// <summary>Settings of stages b–d (the demo's defaults; --quick shrinks the problem count).</summary>
    internal sealed record Settings(int Problems, int SamplesPerProblem, int Rollouts, int Rectifications, int Epochs, int BatchSize,
        double LearningRate, double Beta, double NllWeight = 0);

    public static Settings For(bool quick) => quick
        ? new Settings(Problems: 48, SamplesPerProblem: 4, Rollouts: 4, Rectifications: 4, Epochs: 3, BatchSize: 8, LearningRate: 2e-5, Beta: 0.4)
        : new Settings(Problems: 240, SamplesPerProblem: 6, Rollouts: 6, Rectifications: 6, Epochs: 3, BatchSize: 8, LearningRate: 2e-5, Beta: 0.4);

    /// <summary>The prompt format of the built-in task's models: the question, a newline, then the steps.</summary>
    public static PromptTemplate Template => PromptTemplate.Plain;

    internal sealed record PairFiles(string StepPairs, string AnswerPairs, StepPreferenceReport Report, int Pairs, double Seconds);

    /// <summary>
    /// The training problems stage b samples a seed's pairs from: a different seed of the training split than the
    /// SFT model's, so its mistakes are honest. The first n of a longer draw are the same n problems.
    /// </summary>
    public static IReadOnlyList<ArithmeticProblem> SourceProblems(int count, int seed) =>
        ArithmeticTask.Generate(ArithmeticTaskOptions.Demo, count, seed: 1000 + seed, TaskSplit.Train);

    /// <summary>b. Builds step pairs and answer pairs from the SFT model's samples on training problems.</summary>
    public static PairFiles BuildPairs(string sftModel, Settings s, int seed, string dir)
    {
        var clock = Stopwatch.StartNew();
        Directory.CreateDirectory(dir);
        string stepPath = Path.Combine(dir, $"step-pairs-seed{seed}.jsonl"), answerPath = Path.Combine(dir, $"answer-pairs-seed{seed}.jsonl");
        var problems = SourceProblems(s.Problems, seed);
        var ml = new MLContext(seed);
        var data = ml.Data.LoadFromEnumerable(problems.Select(p => new ProblemRow { Problem = p.Question, Answer = p.Answer.ToString(CultureInfo.InvariantCulture), Id = p.Id }));
        // The small model's sampling runs in batches of up to 128 sequences that problems join as they go (64 problems
        // at a time keep the batches full; more rows only make the key/value cache larger, which costs more than it
        // saves here: docs/benchmarks.md); the pairs do not depend on either number.
        using var policy = LocalModelCompletionSource.Load(sftModel, Template, maxBatchRows: 128);
        var options = new StepPreferenceOptions
        {
            Policy = policy, ProblemColumnName = "Problem", AnswerColumnName = "Answer", IdColumnName = "Id",
            SamplesPerProblem = s.SamplesPerProblem, RolloutsPerPrefix = s.Rollouts, RectificationSamples = s.Rectifications,
            Sampling = new SamplingSettings { Temperature = 0.8, TopP = 0.95, MaxNewTokens = 160, Seed = seed },
            MaxConcurrency = 64, OutputPath = stepPath, AnswerPairsPath = answerPath, Dataset = "arithmetic", Seed = seed,
        };
        var report = ConsoleProgress.Run($"b. step pairs ({problems.Count} problems)", line =>
            ml.StepDpo().BuildStepPreferences(data, options, new InlineProgress<StepPreferenceReport>(r =>
                line.Report(r.Problems, problems.Count, $"b. step pairs: {r.Wrong} wrong of {r.Sampled}, {r.Located} located, {r.Pairs} pairs"))));
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

    /// <summary>A trained model: the step scorer, the progress of every optimizer step, and the training time.</summary>
    internal sealed record Trained(StepScoringTransformer Scorer, IReadOnlyList<TrainingProgress> Steps, double Seconds);

    /// <summary>
    /// c./d. Trains from the SFT model on the first <paramref name="pairs"/> rows of a Math-Step-DPO-10K file. The same
    /// trainer serves both methods: the answer pairs' rows have the whole solution after the shared opening
    /// ("Let's think step by step.\nStep 1:") as chosen and rejected, which is answer-level DPO.
    /// </summary>
    public static Trained Train(string label, string sftModel, string pairsPath, int pairs, Settings s, int seed, string metricsPath)
    {
        var clock = Stopwatch.StartNew();
        var ml = new MLContext(seed);
        var data = ml.Data.TakeRows(ml.Data.LoadFromStepDpoJsonl(pairsPath), pairs);
        var steps = new List<TrainingProgress>();
        var options = new StepDpoTrainer.Options
        {
            BaseModelPath = sftModel, Template = Template, Beta = s.Beta, LearningRate = s.LearningRate,
            Epochs = s.Epochs, BatchSize = s.BatchSize, WarmupRatio = 0.1, Seed = seed, LogInterval = 1, MaxLength = 512, MaxPromptLength = 384,
            MetricsPath = metricsPath, NllWeight = s.NllWeight,
        };
        var trainer = ml.StepDpo().Trainers.StepDpo(options);
        var scorer = ConsoleProgress.Run($"{label} ({pairs} pairs)", line =>
        {
            options.Progress = new InlineProgress<TrainingProgress>(p =>
            {
                steps.Add(p);
                line.Report(p.Step, p.TotalSteps, $"{label}: step {p.Step}/{p.TotalSteps}, loss {p.Metrics.GetValueOrDefault("loss"):F3}, margin {p.Metrics.GetValueOrDefault("rewards/margins"):F2}");
            });
            return trainer.Fit(data);
        });
        // The public training report: how many pairs were used and the metrics of the last step.
        var report = trainer.LastReport!;
        var last = report.History.LastOrDefault();
        AnsiConsole.MarkupLine($"[green]{Markup.Escape(label)}[/]: {report.ExamplesUsed} pairs, final loss {last?.GetValueOrDefault("loss"):F3}, " +
                               $"reward margin {last?.GetValueOrDefault("rewards/margins"):F2}, accuracy {last?.GetValueOrDefault("rewards/accuracies"):F2} ({clock.Elapsed.TotalSeconds:F0} s)");
        return new Trained(scorer, steps, clock.Elapsed.TotalSeconds);
    }
}
