using System.CommandLine;
using StepDpo.Samples;

// Every command lives in its own file under Commands/ and implements ISampleCommand; they are found by
// reflection so adding a command never touches this file. With no command, `demo` runs.
var root = new RootCommand("Microsoft.ML.StepDpo samples: Step-DPO end to end, and tools for your own data.");
var commands = SampleCommands.All();
foreach (var c in commands)
    root.Subcommands.Add(c.Build());

if (args.Length == 0)
    args = new[] { "demo" };

return await root.Parse(args).InvokeAsync();
