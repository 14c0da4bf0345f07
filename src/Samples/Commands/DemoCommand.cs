using System.CommandLine;
using System.Diagnostics;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace StepDpo.Samples;

/// <summary>
/// The main job: Step-DPO end to end on a built-in task. Until the end-to-end stages exist, it runs what
/// exists (a TorchSharp training smoke check) and says plainly what does not yet.
/// </summary>
internal sealed class DemoCommand : ISampleCommand
{
    public Command Build()
    {
        var quick = new Option<bool>("--quick") { Description = "Smallest settings (finishes in a few minutes)." };
        var output = new Option<DirectoryInfo>("--output") { Description = "Output folder.", DefaultValueFactory = _ => new DirectoryInfo("artifacts") };
        var cmd = new Command("demo", "Run Step-DPO end to end on the built-in arithmetic task (default command).") { quick, output };
        cmd.SetAction(parse => Run(parse.GetValue(quick), parse.GetValue(output)!));
        return cmd;
    }

    private static int Run(bool quick, DirectoryInfo output)
    {
        AnsiConsole.MarkupLine("[bold]Microsoft.ML.StepDpo demo[/]");
        var sw = Stopwatch.StartNew();
        torch.manual_seed(0);
        // A tiny regression trained for a few steps proves the native backend loads and autograd works.
        using var scope = torch.NewDisposeScope();
        var w = new TorchSharp.Modules.Parameter(torch.zeros(4, 1));
        var x = torch.randn(64, 4);
        var y = x.matmul(torch.tensor(new float[] { 1, -2, 3, 0.5f }).reshape(4, 1));
        var opt = torch.optim.AdamW(new[] { w }, lr: 0.1);
        float first = 0, last = 0;
        for (int i = 0; i < 200; i++)
        {
            opt.zero_grad();
            var loss = torch.nn.functional.mse_loss(x.matmul(w), y);
            loss.backward();
            opt.step();
            if (i == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        AnsiConsole.MarkupLine($"TorchSharp {torch.__version__} on {torch.CPU}: smoke training loss {first:F4} -> {last:F6} in {sw.ElapsedMilliseconds} ms");
        AnsiConsole.MarkupLine("[yellow]Not yet available:[/] the built-in task, SFT, step-preference data construction, Step-DPO/DPO training and evaluation stages (issues 3-7).");
        return last < first ? 0 : 1;
    }
}
