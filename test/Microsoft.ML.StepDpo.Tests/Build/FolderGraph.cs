using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Tests.Build;

/// <summary>
/// The graph "folder A uses folder B" of the library's source. A folder is a top folder of src/Microsoft.ML.StepDpo and
/// namespace Microsoft.ML.StepDpo.A (sub-namespaces such as Modeling.Tokenization count as their top folder); Catalog is
/// namespace Microsoft.ML.StepDpo itself. A uses B when A's code (comments and string literals left out) has a
/// <c>using Microsoft.ML.StepDpo.B…</c> directive, a qualified name <c>Microsoft.ML.StepDpo.B.…</c>, a name qualified
/// from a sibling namespace (<c>B.SomeType</c>, with SomeType declared in B), or names a type declared in Catalog.
/// </summary>
internal sealed partial class FolderGraph
{
    public const string Catalog = "Catalog";
    private const string Root = "Microsoft.ML.StepDpo";

    private FolderGraph(IReadOnlyDictionary<string, SortedSet<string>> edges) => Edges = edges;

    /// <summary>For each folder, the folders it uses.</summary>
    public IReadOnlyDictionary<string, SortedSet<string>> Edges { get; }

    /// <summary>The folder a namespace belongs to.</summary>
    public static string FolderOf(string ns) =>
        ns == Root ? Catalog : ns.StartsWith(Root + ".", StringComparison.Ordinal) ? ns[(Root.Length + 1)..].Split('.')[0] : "";

    /// <summary>The graph of <paramref name="files"/>: (top folder, source text) pairs.</summary>
    public static FolderGraph Build(IEnumerable<(string Folder, string Source)> files)
    {
        var code = files.Select(f => (f.Folder, Code: StripCommentsAndStrings(f.Source))).ToList();
        var folders = code.Select(f => f.Folder).ToHashSet(StringComparer.Ordinal);
        // Names declared per folder (types and sub-namespaces), to recognise B.Name and Catalog's types.
        var declared = folders.ToDictionary(f => f, _ => new HashSet<string>(StringComparer.Ordinal), StringComparer.Ordinal);
        foreach (var (folder, text) in code)
        {
            foreach (Match m in TypeDeclaration().Matches(text)) declared[folder].Add(m.Groups[1].Value);
            foreach (Match m in NamespaceDeclaration().Matches(text))
                foreach (var part in m.Groups[1].Value.Split('.').Skip(4)) declared[folder].Add(part);
        }

        var edges = folders.ToDictionary(f => f, _ => new SortedSet<string>(StringComparer.Ordinal), StringComparer.Ordinal);
        void Use(string from, string to)
        {
            if (to != from && folders.Contains(to)) edges[from].Add(to);
        }
        foreach (var (folder, text) in code)
        {
            foreach (Match m in QualifiedName().Matches(text)) Use(folder, m.Groups[1].Value);
            foreach (Match m in UsingDirective().Matches(text)) Use(folder, FolderOf(m.Groups[1].Value));
            foreach (Match m in SiblingQualifiedName().Matches(text))
                if (declared.TryGetValue(m.Groups[1].Value, out var names) && names.Contains(m.Groups[2].Value)) Use(folder, m.Groups[1].Value);
            if (folder != Catalog && declared.TryGetValue(Catalog, out var catalogTypes))
                foreach (Match m in Identifier().Matches(text))
                    if (catalogTypes.Contains(m.Value)) Use(folder, Catalog);
        }
        return new FolderGraph(edges);
    }

    /// <summary>A cycle as "A -> B -> … -> A", or null when the graph has none.</summary>
    public string? FindCycle()
    {
        var state = Edges.Keys.ToDictionary(k => k, _ => 0, StringComparer.Ordinal); // 0 new, 1 on the path, 2 done
        var path = new List<string>();
        string? Visit(string node)
        {
            state[node] = 1;
            path.Add(node);
            foreach (var next in Edges[node])
            {
                if (state[next] == 1) return string.Join(" -> ", path.Skip(path.IndexOf(next)).Append(next));
                if (state[next] == 0 && Visit(next) is { } cycle) return cycle;
            }
            path.RemoveAt(path.Count - 1);
            state[node] = 2;
            return null;
        }
        foreach (var node in Edges.Keys.Order(StringComparer.Ordinal))
            if (state[node] == 0 && Visit(node) is { } cycle) return cycle;
        return null;
    }

    public override string ToString() =>
        string.Join("\n", Edges.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key} -> {string.Join(", ", e.Value)}"));

    /// <summary>The source with comments and string/char literals blanked (raw, verbatim and interpolated strings included).</summary>
    internal static string StripCommentsAndStrings(string source) => CommentOrLiteral().Replace(source, " ");

    [GeneratedRegex(@"""""""[\s\S]*?""""""|//[^\n]*|/\*[\s\S]*?\*/|\$?@""(?:[^""]|"""")*""|@?\$?""(?:[^""\\\n]|\\.)*""|'(?:[^'\\\n]|\\.)+'")]
    private static partial Regex CommentOrLiteral();

    [GeneratedRegex(@"(?<![\w.])Microsoft\.ML\.StepDpo\.(\w+)\s*\.")]
    private static partial Regex QualifiedName();

    [GeneratedRegex(@"^\s*(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?(Microsoft\.ML\.StepDpo(?:\.\w+)*)\s*;", RegexOptions.Multiline)]
    private static partial Regex UsingDirective();

    [GeneratedRegex(@"(?<![\w.])(\w+)\s*\.\s*(\w+)")]
    private static partial Regex SiblingQualifiedName();

    [GeneratedRegex(@"\b(?:class|record|struct|interface|enum)\s+(\w+)")]
    private static partial Regex TypeDeclaration();

    [GeneratedRegex(@"^\s*namespace\s+([\w.]+)", RegexOptions.Multiline)]
    private static partial Regex NamespaceDeclaration();

    [GeneratedRegex(@"\b[A-Za-z_]\w*\b")]
    private static partial Regex Identifier();
}
