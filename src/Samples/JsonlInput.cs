using System.Text.Json;

namespace StepDpo.Samples;

/// <summary>
/// The checks every JSONL-reading command makes before any work: the input is a readable file, the output is not
/// the input, and every field named on the command line is in the file (a misspelled field is never read as "").
/// </summary>
internal static class JsonlInput
{
    private static readonly StringComparison s_pathComparison = OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase;

    /// <summary>Fails with a usage error unless <paramref name="file"/> (given as <paramref name="option"/>) is an existing file.</summary>
    public static void RequireFile(FileInfo file, string option)
    {
        if (Directory.Exists(file.FullName))
            throw new UsageException($"{file.FullName}: {option} is a folder; give a file.");
        if (!File.Exists(file.FullName))
            throw new UsageException($"{file.FullName}: no such file ({option}); check the path.");
    }

    /// <summary>Fails with a usage error when <paramref name="output"/> is <paramref name="input"/> (full paths, symbolic links followed).</summary>
    public static void RequireDistinct(FileInfo input, FileInfo? output, string outputOption = "--output")
    {
        if (output is null) return;
        if (Directory.Exists(output.FullName))
            throw new UsageException($"{output.FullName}: {outputOption} is a folder; give a file path.");
        if (string.Equals(Resolve(input.FullName), Resolve(output.FullName), s_pathComparison))
            throw new UsageException($"{output.FullName}: {outputOption} is the input file; writing it would destroy the input. Choose another output path.");
    }

    /// <summary>The path with the file's symbolic links (and those of its folders) followed, when it exists.</summary>
    private static string Resolve(string path)
    {
        string full = Path.GetFullPath(path);
        try
        {
            string? folder = Path.GetDirectoryName(full);
            if (folder is not null && Directory.Exists(folder))
            {
                var dir = new DirectoryInfo(folder);
                string realFolder = dir.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? RealFolder(dir);
                full = Path.Combine(realFolder, Path.GetFileName(full));
            }
            return new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
        }
        catch (IOException)
        {
            return full; // a link cycle or an unreadable link: compared as written
        }
    }

    // A folder's path with any linked folder above it followed.
    private static string RealFolder(DirectoryInfo dir)
    {
        if (dir.Parent is null) return dir.FullName;
        var parent = dir.Parent.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? RealFolder(dir.Parent);
        return Path.Combine(parent, dir.Name);
    }

    /// <summary>
    /// Reads the file once and checks the fields named on the command line (option → field): a field no row has is a
    /// usage error naming it and the fields the file has; rows lacking a field some rows have are counted and
    /// reported on stderr (they are read as empty text). Returns the number of non-blank lines (a command's progress
    /// total, so that it need not read the file again). Malformed lines are left to the reader, which reports them with
    /// file and line.
    /// </summary>
    public static long CheckFields(FileInfo input, params (string Option, string? Field)[] named)
    {
        var names = new List<string>();
        long lines = 0;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var wanted = named.Where(n => n.Field is not null).Select(n => n.Field!).Distinct().ToList();
        var present = wanted.ToDictionary(f => f, _ => 0L, StringComparer.Ordinal);
        long rows = 0;
        foreach (var line in File.ReadLines(input.FullName))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            lines++;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.ValueKind != JsonValueKind.Object) continue;
                rows++;
                foreach (var p in doc.RootElement.EnumerateObject())
                    if (seen.Add(p.Name)) names.Add(p.Name);
                foreach (var f in wanted)
                    if (doc.RootElement.TryGetProperty(f, out _)) present[f]++;
            }
            catch (JsonException) { } // the reader reports malformed lines with file:line
        }
        foreach (var (option, field) in named)
        {
            if (field is null) continue;
            if (rows > 0 && present[field] == 0)
                throw new UsageException($"{input.FullName}: no row has the field '{field}' ({option}); the fields are: {string.Join(", ", names)}. Check the spelling.");
        }
        foreach (var f in wanted)
            if (present[f] < rows)
                Console.Error.WriteLine($"warning: {input.FullName}: {rows - present[f]} of {rows} rows lack the field '{f}'; they are read as empty text.");
        return lines;
    }
}
