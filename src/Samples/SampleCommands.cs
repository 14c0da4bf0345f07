using System.CommandLine;
using System.Reflection;

namespace StepDpo.Samples;

/// <summary>One command of the samples app.</summary>
internal interface ISampleCommand
{
    /// <summary>Builds the System.CommandLine command, with its options and action.</summary>
    Command Build();
}

internal static class SampleCommands
{
    /// <summary>All commands in this assembly, ordered by name.</summary>
    public static IReadOnlyList<ISampleCommand> All() =>
        typeof(SampleCommands).Assembly.GetTypes()
            .Where(t => typeof(ISampleCommand).IsAssignableFrom(t) && !t.IsAbstract && !t.IsInterface)
            .OrderBy(t => t.Name, StringComparer.Ordinal)
            .Select(t => (ISampleCommand)Activator.CreateInstance(t, nonPublic: true)!)
            .ToList();
}
