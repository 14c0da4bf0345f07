using System.CommandLine;

namespace StepDpo.Tools;

/// <summary>
/// Research and benchmark tools of Microsoft.ML.StepDpo: the study behind the demo's numbers, the benchmarks, the
/// demo's SFT model and fixtures for checks. Every command lives in its own file under Commands/.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var root = new RootCommand("Microsoft.ML.StepDpo research tools: the study, benchmarks, the demo's SFT model and check fixtures.");
        foreach (var c in ToolCommands.All())
            root.Subcommands.Add(c.Build());
        return await root.Parse(args).InvokeAsync();
    }
}
