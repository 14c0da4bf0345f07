using System.CommandLine;
using StepDpo.Samples;

// Every command lives in its own file under Commands/ and implements ISampleCommand; they are found by
// reflection so adding a command never touches this file. With no command, `demo` runs.
ConsoleProgress.ConfigureConsole();
var root = new RootCommand("Microsoft.ML.StepDpo samples: Step-DPO end to end, and tools for your own data.");
var verbose = new Option<bool>("--verbose") { Description = "On an error, also print the full exception with its stack trace.", Recursive = true };
root.Options.Add(verbose);
var commands = SampleCommands.All();
foreach (var c in commands)
    root.Subcommands.Add(c.Build());

// No command, or only options (e.g. `-- --quick`): the demo.
if (args.Length == 0 || (args[0].StartsWith('-') && args[0] is not ("-h" or "--help" or "-?" or "/?" or "--version")))
    args = new[] { "demo" }.Concat(args).ToArray();

// Every failure is one line on stderr and exit code 2 (usage) or 1 (failure); see ErrorReport.
var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
    return ErrorReport.ReportUsage($"{parsed.Errors[0].Message} (see `{parsed.CommandResult.Command.Name} --help`)");
try
{
    return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e)
{
    return ErrorReport.Report(e, parsed.GetValue(verbose));
}
