using System.CommandLine;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.StepDpo.Scoring;
using Microsoft.ML.StepDpo.Tasks;
using Spectre.Console;

namespace StepDpo.Samples;

/// <summary>
/// The second sample: an application that grades students' answers step by step with a saved Step-DPO model.
/// It loads the ML.NET zip with mlContext.Model.Load, runs a PredictionEngine over a few answers to one problem
/// (one correct, the others with one wrong step), and prints each step's reward and the first step it doubts.
/// </summary>
internal sealed class GradeCommand : ISampleCommand
{
    public Command Build()
    {
        var model = new Option<FileInfo>("--model") { Description = "Step scorer zip (the demo writes artifacts/step-dpo.zip).", DefaultValueFactory = _ => new FileInfo("artifacts/step-dpo.zip") };
        var threshold = new Option<double?>("--threshold") { Description = "Reward below which a step is doubted (default: the model's own, 0)." };
        var seed = new Option<int>("--seed") { Description = "Which held-out problem to grade.", DefaultValueFactory = _ => 7 };
        var cmd = new Command("grade", "Grade students' answers step by step with a saved Step-DPO model (PredictionEngine).") { model, threshold, seed };
        cmd.SetAction(p => Run(p.GetValue(model)!, p.GetValue(threshold), p.GetValue(seed)));
        return cmd;
    }

    /// <summary>What the application feeds the model: the problem and a student's solution.</summary>
    private sealed class StudentAnswer
    {
        public string prompt { get; set; } = "";
        public string solution { get; set; } = "";
    }

    /// <summary>What it reads back.</summary>
    private sealed class Grade
    {
        public float[] StepRewards { get; set; } = Array.Empty<float>();
        public float TotalReward { get; set; }
        public int FirstErrorStep { get; set; }
    }

    private static int Run(FileInfo modelFile, double? threshold, int seed)
    {
        if (!modelFile.Exists)
            throw new UsageException($"{modelFile.FullName}: no model there (--model); run the demo first (it writes artifacts/step-dpo.zip), or pass --model.");
        var ml = new MLContext(0);
        ml.ComponentCatalog.RegisterAssembly(typeof(StepScoringTransformer).Assembly);
        var transformer = ml.Model.Load(modelFile.FullName, out _);
        var engine = ml.Model.CreatePredictionEngine<StudentAnswer, Grade>(transformer);

        var problem = ArithmeticTask.Generate(ArithmeticTaskOptions.Demo, 1, seed, TaskSplit.HeldOut)[0];
        AnsiConsole.MarkupLineInterpolated($"[bold]Problem[/]: {problem.Question}");
        foreach (var (label, solution) in Answers(problem))
        {
            var g = engine.Predict(new StudentAnswer { prompt = problem.Question, solution = solution });
            int doubted = threshold is double t ? Array.FindIndex(g.StepRewards, r => r < t) + 1 : g.FirstErrorStep;
            if (doubted == 0) doubted = -1;
            var table = new Table().Title(label).AddColumns("Step", "Text", "Reward");
            var lines = solution.Split('\n').Where(l => l.StartsWith("Step ", StringComparison.Ordinal)).ToList();
            for (int i = 0; i < g.StepRewards.Length; i++)
            {
                string text = i < lines.Count ? lines[i] : "";
                string reward = g.StepRewards[i].ToString("+0.000;-0.000", CultureInfo.InvariantCulture);
                table.AddRow((i + 1).ToString(CultureInfo.InvariantCulture), Markup.Escape(text), i + 1 == doubted ? $"[red]{reward}[/]" : reward);
            }
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine(doubted > 0 ? $"  first doubted step: [red]{doubted}[/] (total reward {g.TotalReward:F3})" : $"  no step doubted (total reward {g.TotalReward:F3})");
        }
        return 0;
    }

    /// <summary>The gold solution and variants with one wrong result (later steps left as in the gold solution).</summary>
    internal static IEnumerable<(string Label, string Solution)> Answers(ArithmeticProblem problem)
    {
        yield return ("correct answer", problem.Solution);
        var steps = problem.Steps.ToList();
        for (int k = 0; k < steps.Count; k++)
        {
            // "12+54=66." → "12+54=67." : the first wrong step is k+1.
            var s = steps[k];
            int eq = s.IndexOf('=');
            if (eq < 0 || !int.TryParse(s[(eq + 1)..].TrimEnd('.'), NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)) continue;
            var wrong = steps.ToList();
            wrong[k] = $"{s[..(eq + 1)]}{value + 1 + k}.";
            yield return ($"wrong at step {k + 1}", ArithmeticTask.FormatSolution(wrong, k == steps.Count - 1 ? value + 1 + k : problem.Answer));
        }
    }
}
