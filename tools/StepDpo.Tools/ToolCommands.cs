using System.CommandLine;

namespace StepDpo.Tools;

/// <summary>One command of the tools app.</summary>
internal interface IToolCommand
{
    /// <summary>Builds the System.CommandLine command, with its options and action.</summary>
    Command Build();
}

internal static class ToolCommands
{
    /// <summary>All commands in this assembly, ordered by name; found by reflection, so a new command touches only its own file.</summary>
    public static IReadOnlyList<IToolCommand> All() =>
        typeof(ToolCommands).Assembly.GetTypes()
            .Where(t => typeof(IToolCommand).IsAssignableFrom(t) && !t.IsAbstract && !t.IsInterface)
            .OrderBy(t => t.Name, StringComparer.Ordinal)
            .Select(t => (IToolCommand)Activator.CreateInstance(t, nonPublic: true)!)
            .ToList();
}
