using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Tests.Install;

/// <summary>
/// The README's install section as a user follows it: pack the library into a folder feed, create a console app, add
/// the feed, the package and TorchSharp-cpu with the README's own commands, put the README's first snippet in
/// Program.cs and run it from the repository root.
/// </summary>
[TestClass]
public sealed class PackageInstallTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>The commands of README's install block, in order (comments and blank lines left out).</summary>
    private static readonly string[] s_readmeInstallCommands =
    [
        "dotnet pack src/Microsoft.ML.StepDpo -c Release -o ~/stepdpo-feed",
        "dotnet new console -o ~/MyApp",
        "cd ~/MyApp",
        "dotnet new nugetconfig",
        "dotnet nuget add source ~/stepdpo-feed --name stepdpo-local",
        "dotnet add package Microsoft.ML.StepDpo --version 1.0.0",
        "dotnet add package TorchSharp-cpu --version 0.107.0",
        "cp src/Samples/QuickStart/Program.cs ~/MyApp/Program.cs",
        "dotnet run --project ~/MyApp -c Release",
    ];

    [TestMethod]
    public void ReadmeInstallBlockHasTheCommandsThisTestRuns()
    {
        var commands = ReadmeInstallCommands();
        CollectionAssert.AreEqual(s_readmeInstallCommands, commands,
            "README.md's install block changed: update this test so it still runs what the README says.\n" + string.Join('\n', commands));
    }

    [TestMethod]
    public void ReadmeInstallPathRunsTheQuickStartFromThePackage()
    {
        CollectionAssert.AreEqual(s_readmeInstallCommands, ReadmeInstallCommands());
        var clock = Stopwatch.StartNew();
        var feed = LocalPackageFeed.Instance; // dotnet pack src/Microsoft.ML.StepDpo -c Release -o ~/stepdpo-feed (unique version)
        var packed = clock.Elapsed;

        string app = NewApp(feed, "MyApp", "net10.0");
        File.Copy(Path.Combine(RepositoryFiles.Root, "src", "Samples", "QuickStart", "Program.cs"), Path.Combine(app, "Program.cs"), overwrite: true);
        var installed = clock.Elapsed;

        string outputFolder = Path.Combine(feed.WorkRoot, "quickstart-output");
        string output = DotnetCli.Run(RepositoryFiles.Root,
            ["run", "--project", app, "-c", "Release", "--disable-build-servers", "--", outputFolder]);
        var ran = clock.Elapsed;
        TestContext.WriteLine($"pack {packed.TotalSeconds:F0} s, app + packages {(installed - packed).TotalSeconds:F0} s, " +
                              $"build + run of the quick start {(ran - installed).TotalSeconds:F0} s; output:\n{output}");

        StringAssert.Contains(output, "1. first wrong step: -1, 2 (-1: none); answers: 4, 5");
        var pairs = Regex.Match(output, @"^2\. (\d+) samples, (\d+) wrong, (\d+) located, (\d+) step pairs$", RegexOptions.Multiline);
        Assert.IsTrue(pairs.Success, output);
        Assert.IsTrue(int.Parse(pairs.Groups[4].Value) > 0, "the quick start's problems must yield step pairs");
        string scorer = Path.Combine(outputFolder, "step-scorer.zip");
        StringAssert.Contains(output, $"3. saved {scorer}");
        Assert.IsTrue(File.Exists(scorer));
        var scores = Regex.Matches(output, @"^4\. step rewards [+-]\d[.,]\d{3} [+-]\d[.,]\d{3} [+-]\d[.,]\d{3}, first doubted step: (-1|[1-3])$", RegexOptions.Multiline);
        Assert.AreEqual(2, scores.Count, output);

        // A net8.0 application restores the same package, loads TorchSharp through the package's build targets and
        // loads the saved model without registering the library's assembly and without touching any of its types.
        // Only the .NET 10 runtime may be installed, so the app runs on it (roll forward); it is built for net8.0.
        string app8 = NewApp(feed, "MyApp8", "net8.0");
        File.WriteAllText(Path.Combine(app8, "Program.cs"), LoadOnlyProgram);
        string output8 = DotnetCli.Run(RepositoryFiles.Root, ["run", "--project", app8, "-c", "Release", "--disable-build-servers", "--", scorer],
            new Dictionary<string, string> { ["DOTNET_ROLL_FORWARD"] = "Major" });
        TestContext.WriteLine($"net8.0 app, install + build + run {(clock.Elapsed - ran).TotalSeconds:F0} s; output:\n{output8}");
        StringAssert.Contains(output8, "library loaded before Model.Load: False");
        Assert.IsTrue(Regex.IsMatch(output8, @"^rewards: 3 steps, first doubted step: (-1|[1-3])$", RegexOptions.Multiline), output8);
        StringAssert.Contains(output8, "target: .NETCoreApp,Version=v8.0");
    }

    /// <summary>dotnet new console, then the README's nuget.config, source and package commands, in a fresh folder.</summary>
    private static string NewApp(LocalPackageFeed feed, string name, string framework)
    {
        string app = Path.Combine(feed.WorkRoot, name);
        DotnetCli.Run(feed.WorkRoot, ["new", "console", "-o", app]);
        // The .NET 10 SDK's template offers net10.0 only; an older target is an edit of the project file.
        string project = Path.Combine(app, name + ".csproj");
        string xml = File.ReadAllText(project);
        StringAssert.Contains(xml, "<TargetFramework>net10.0</TargetFramework>");
        File.WriteAllText(project, xml.Replace("<TargetFramework>net10.0</TargetFramework>", $"<TargetFramework>{framework}</TargetFramework>", StringComparison.Ordinal));
        DotnetCli.Run(app, ["new", "nugetconfig"]);
        DotnetCli.Run(app, ["nuget", "add", "source", feed.Feed, "--name", "stepdpo-local"]);
        DotnetCli.Run(app, ["add", "package", "Microsoft.ML.StepDpo", "--version", feed.Version]);
        DotnetCli.Run(app, ["add", "package", "TorchSharp-cpu", "--version", "0.107.0"]);
        return app;
    }

    private static List<string> ReadmeInstallCommands() =>
        RepositoryFiles.ReadmeBlock("install").Split('\n')
            .Select(l => (l.Contains('#') ? l[..l.IndexOf('#')] : l).Trim())
            .Where(l => l.Length > 0)
            .ToList();

    /// <summary>An application that only loads a saved scorer: ML.NET types and its own classes, nothing of the library.</summary>
    private const string LoadOnlyProgram = """
        using System.Reflection;
        using System.Runtime.Versioning;
        using Microsoft.ML;

        bool loaded = AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name == "Microsoft.ML.StepDpo");
        Console.WriteLine($"library loaded before Model.Load: {loaded}");
        Console.WriteLine($"target: {Assembly.GetEntryAssembly()!.GetCustomAttribute<TargetFrameworkAttribute>()!.FrameworkName}");
        var ml = new MLContext(seed: 1);
        var engine = ml.Model.CreatePredictionEngine<Answer, StepScores>(ml.Model.Load(args[0], out _));
        var s = engine.Predict(new Answer
        {
            prompt = "Ava has 18 shells. Ava gives away 8. Ava gives 2 friends 3 each. How many shells now?",
            solution = "Let's think step by step.\nStep 1: 18-8=10.\nStep 2: 2*3=6.\nStep 3: 10-6=4.\nThe answer is 4.",
        });
        Console.WriteLine($"rewards: {s.StepRewards.Length} steps, first doubted step: {s.FirstErrorStep}");

        class Answer { public string prompt { get; set; } = ""; public string solution { get; set; } = ""; }
        class StepScores { public float[] StepRewards { get; set; } = []; public int FirstErrorStep { get; set; } }
        """;
}
