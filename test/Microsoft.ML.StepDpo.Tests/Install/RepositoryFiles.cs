namespace Microsoft.ML.StepDpo.Tests.Install;

/// <summary>The repository checkout the tests run from, and the marked blocks of its README.</summary>
internal static class RepositoryFiles
{
    private static readonly Lazy<string> s_root = new(FindRoot);

    /// <summary>The folder holding StepDpo.sln, found by walking up from the test binaries.</summary>
    public static string Root => s_root.Value;

    public static string Readme => File.ReadAllText(Path.Combine(Root, "README.md"));

    /// <summary>
    /// The fenced code between <c>&lt;!-- name:begin --&gt;</c> and <c>&lt;!-- name:end --&gt;</c> in the README
    /// (the fence lines themselves excluded), with '\n' line ends.
    /// </summary>
    public static string ReadmeBlock(string name)
    {
        string text = Normalize(Readme);
        string begin = $"<!-- {name}:begin -->", end = $"<!-- {name}:end -->";
        int b = text.IndexOf(begin, StringComparison.Ordinal);
        int e = text.IndexOf(end, StringComparison.Ordinal);
        Assert.IsTrue(b >= 0 && e > b, $"README.md has no block marked {begin} … {end}");
        var lines = text[(b + begin.Length)..e].Trim('\n').Split('\n');
        Assert.IsTrue(lines.Length >= 2 && lines[0].StartsWith("```", StringComparison.Ordinal) && lines[^1] == "```",
            $"The {name} block must be one fenced code block.");
        return string.Join('\n', lines[1..^1]) + "\n";
    }

    public static string Normalize(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "StepDpo.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"No StepDpo.sln above {AppContext.BaseDirectory}.");
    }
}
