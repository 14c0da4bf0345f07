using System.CommandLine;
using StepDpo.Samples;

// Every command lives in its own file under Commands/ and implements ISampleCommand; they are found by
// reflection so adding a command never touches this file. With no command, `demo` runs.
ConsoleProgress.ConfigureConsole();
var root = new RootCommand("Microsoft.ML.StepDpo samples: Step-DPO end to end, and tools for your own data.");
var commands = SampleCommands.All();
foreach (var c in commands)
    root.Subcommands.Add(c.Build());

// No command, or only options (e.g. `-- --quick`): the demo.
if (args.Length == 0 || (args[0].StartsWith('-') && args[0] is not ("-h" or "--help" or "-?" or "/?" or "--version")))
    args = new[] { "demo" }.Concat(args).ToArray();

return await root.Parse(args).InvokeAsync();
