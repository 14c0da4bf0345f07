using Microsoft.ML.StepDpo.Training;
using ScottPlot;

namespace StepDpo.Samples;

/// <summary>The demo's PNG: held-out accuracy per method (with 95% intervals) and reward margins over training steps.</summary>
internal static class DemoChart
{
    public static void Write(string path, IReadOnlyList<(string Label, double Accuracy, double Lower, double Upper)> accuracies,
        IReadOnlyDictionary<string, List<(int Seed, IReadOnlyList<TrainingProgress> Steps)>> trainingSteps)
    {
        var multi = new Multiplot();
        multi.AddPlots(2);
        multi.Layout = new ScottPlot.MultiplotLayouts.Columns();

        var acc = multi.GetPlot(0);
        var bars = new List<Bar>();
        for (int i = 0; i < accuracies.Count; i++)
        {
            var a = accuracies[i];
            bars.Add(new Bar
            {
                Position = i, Value = a.Accuracy * 100, FillColor = Colors.Category10[i % 10],
                Error = Math.Max(a.Accuracy - a.Lower, a.Upper - a.Accuracy) * 100, // the wider side of the Wilson interval
            });
        }
        acc.Add.Bars(bars);
        acc.Axes.Bottom.SetTicks(Enumerable.Range(0, accuracies.Count).Select(i => (double)i).ToArray(), accuracies.Select(a => a.Label).ToArray());
        acc.Axes.Left.Label.Text = "held-out greedy accuracy (%)";
        acc.Axes.SetLimitsY(0, 100);
        acc.Title("Accuracy (95% CI)");

        var margins = multi.GetPlot(1);
        int color = 1;
        foreach (var (method, runs) in trainingSteps.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            foreach (var (seed, steps) in runs)
            {
                var points = steps.Where(p => p.Metrics.ContainsKey("rewards/margins")).ToList();
                if (points.Count == 0) continue;
                var line = margins.Add.Scatter(points.Select(p => (double)p.Step).ToArray(), points.Select(p => p.Metrics["rewards/margins"]).ToArray());
                line.LegendText = runs.Count > 1 ? $"{Label(method)} (seed {seed})" : Label(method);
                line.Color = Colors.Category10[color % 10];
                line.MarkerSize = 0;
            }
            color++;
        }
        margins.Axes.Bottom.Label.Text = "optimizer step";
        margins.Axes.Left.Label.Text = "rewards/margins (β·log-ratio, chosen − rejected)";
        margins.Title("Reward margin during training");
        margins.ShowLegend(Alignment.UpperLeft);
        multi.SavePng(path, 1200, 480);
    }

    public static string Label(string method) => method switch
    {
        "sft" => "SFT",
        "dpo" => "DPO",
        "step_dpo" => "Step-DPO",
        _ => method,
    };
}
