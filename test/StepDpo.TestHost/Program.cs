namespace StepDpo.TestHost;

/// <summary>
/// The tests' fresh process, on the library's public API only: <c>apply-model</c> loads a saved ML.NET model and
/// writes its outputs; <c>train</c> runs Step-DPO with checkpoints and can kill itself at a given step.
/// </summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        try
        {
            var options = HostArguments.Parse(args.Skip(1));
            return args.FirstOrDefault() switch
            {
                "apply-model" => ApplyModelCommand.Run(options),
                "train" => TrainCommand.Run(options),
                var other => Usage($"unknown command '{other}'"),
            };
        }
        catch (ArgumentException e)
        {
            return Usage(e.Message);
        }
    }

    private static int Usage(string problem)
    {
        Console.Error.WriteLine($"StepDpo.TestHost: {problem}. Commands: apply-model, train (see their files for the options).");
        return 2;
    }
}
