using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Tests.Build;

/// <summary>The library's folders form layers: no folder uses, directly or through others, a folder that uses it.</summary>
[TestClass]
public sealed class FolderStructureTests
{
    private static string LibraryDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "StepDpo.sln")))
                return Path.Combine(dir.FullName, "src", "Microsoft.ML.StepDpo");
        throw new InvalidOperationException($"No StepDpo.sln above {AppContext.BaseDirectory}.");
    }

    /// <summary>The library's compiled sources as (top folder, text); build/ holds MSBuild logic, not library code.</summary>
    private static List<(string Folder, string Path, string Source)> LibrarySources()
    {
        var root = LibraryDirectory();
        return Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Select(p => (Relative: Path.GetRelativePath(root, p), Full: p))
            .Where(p => p.Relative.Contains(Path.DirectorySeparatorChar))
            .Select(p => (Folder: p.Relative.Split(Path.DirectorySeparatorChar)[0], p.Relative, Source: File.ReadAllText(p.Full)))
            .Where(p => p.Folder is not ("bin" or "obj" or "build"))
            .ToList();
    }

    [TestMethod]
    public void EveryFileLivesInTheFolderOfItsNamespace()
    {
        var sources = LibrarySources();
        Assert.IsGreaterThan(50, sources.Count, "the library's sources were found");
        foreach (var (folder, path, source) in sources)
        {
            var ns = Regex.Match(source, @"^namespace\s+([\w.]+)", RegexOptions.Multiline).Groups[1].Value;
            Assert.AreEqual(folder, FolderGraph.FolderOf(ns), $"{path}: namespace {ns}");
        }
    }

    [TestMethod]
    public void TheFoldersHaveNoCycle()
    {
        var graph = FolderGraph.Build(LibrarySources().Select(s => (s.Folder, s.Source)));
        Console.WriteLine(graph);
        Assert.IsNull(graph.FindCycle(), $"folder cycle: {graph.FindCycle()}\n{graph}");
        CollectionAssert.Contains(graph.Edges["Training"].ToList(), "Modeling", "the graph sees real uses");
    }

    [TestMethod]
    public void EachKindOfUseIsSeenAndACycleIsReported()
    {
        static FolderGraph Graph(params (string Folder, string Source)[] files) => FolderGraph.Build(files);
        const string Base = "namespace Microsoft.ML.StepDpo.Modeling; internal sealed class Qwen2 { }";

        var byUsing = Graph(("Modeling", Base), ("Training", "using Microsoft.ML.StepDpo.Modeling.Tokenization;\nnamespace Microsoft.ML.StepDpo.Training;"));
        CollectionAssert.AreEqual(new[] { "Modeling" }, byUsing.Edges["Training"].ToList());
        var byQualifiedName = Graph(("Modeling", Base), ("Training", "namespace Microsoft.ML.StepDpo.Training; class T { Microsoft.ML.StepDpo.Modeling.Qwen2? m; }"));
        CollectionAssert.AreEqual(new[] { "Modeling" }, byQualifiedName.Edges["Training"].ToList());
        var bySiblingName = Graph(("Modeling", Base), ("Training", "namespace Microsoft.ML.StepDpo.Training; class T { Modeling.Qwen2? m; }"));
        CollectionAssert.AreEqual(new[] { "Modeling" }, bySiblingName.Edges["Training"].ToList());
        var byCatalogType = Graph(("Catalog", "namespace Microsoft.ML.StepDpo; public sealed class StepDpoCatalog { }"),
            ("Training", "namespace Microsoft.ML.StepDpo.Training; class T { StepDpoCatalog? c; }"));
        CollectionAssert.AreEqual(new[] { "Catalog" }, byCatalogType.Edges["Training"].ToList());
        var inCommentsAndStrings = Graph(("Modeling", Base), ("Training",
            "namespace Microsoft.ML.StepDpo.Training; /// <see cref=\"Microsoft.ML.StepDpo.Modeling.Qwen2\"/>\n// Modeling.Qwen2\nclass T { string s = \"Microsoft.ML.StepDpo.Modeling.Qwen2\"; }"));
        Assert.IsEmpty(inCommentsAndStrings.Edges["Training"]);

        var cyclic = Graph(
            ("Modeling", "using Microsoft.ML.StepDpo.Scoring;\nnamespace Microsoft.ML.StepDpo.Modeling;"),
            ("Scoring", "namespace Microsoft.ML.StepDpo.Scoring; class S { Training.Trainer? t; }"),
            ("Training", "namespace Microsoft.ML.StepDpo.Training; class Trainer { Microsoft.ML.StepDpo.Modeling.X? x; }"));
        Assert.AreEqual("Modeling -> Scoring -> Training -> Modeling", cyclic.FindCycle());
    }
}
