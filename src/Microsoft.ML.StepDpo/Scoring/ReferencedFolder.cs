using System.Text.Json.Serialization;
using Microsoft.ML.StepDpo.Modeling;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// A Hugging Face model folder that a saved scorer uses by reference: its absolute path and the SHA-256 of each file
/// the model is read from (config.json, the safetensors files and their index). <see cref="Check"/> proves, before
/// anything is loaded, that the folder still holds exactly those files, and otherwise says in one line which folder and
/// which file differ. Hashes stream from disk and are remembered by size and last-write time (<see cref="FileHashCache"/>).
/// </summary>
internal sealed class ReferencedFolder
{
    /// <summary>The folder's absolute path when the scorer was saved.</summary>
    public string Path { get; set; } = "";

    /// <summary>File name → lowercase hex SHA-256.</summary>
    public SortedDictionary<string, string> Files { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Total size of those files in bytes.</summary>
    public long Bytes { get; set; }

    /// <summary>Records the folder as it is now.</summary>
    public static ReferencedFolder Of(string directory)
    {
        var full = System.IO.Path.GetFullPath(directory);
        var folder = new ReferencedFolder { Path = full };
        foreach (var file in ModelFiles(full))
        {
            folder.Files[System.IO.Path.GetFileName(file)] = FileHashCache.Sha256(file);
            folder.Bytes += new FileInfo(file).Length;
        }
        return folder;
    }

    /// <summary>The files a model is read from: config.json, the weights index when there is one, and the weight files.</summary>
    internal static IEnumerable<string> ModelFiles(string directory)
    {
        yield return System.IO.Path.Combine(directory, ModelCheckpoint.ConfigFile);
        var index = System.IO.Path.Combine(directory, ModelCheckpoint.IndexFile);
        if (File.Exists(index)) yield return index;
        foreach (var f in ModelCheckpoint.WeightFiles(directory)) yield return f;
    }

    [JsonIgnore]
    private string Names => string.Join(", ", Files.Keys);

    /// <summary>
    /// Throws unless the folder holds exactly the recorded files with the recorded hashes; <paramref name="role"/> names
    /// the folder in messages ("policy folder", "base model folder", …).
    /// </summary>
    public void Check(string role)
    {
        string what = $"The step scorer's {role} '{Path}'";
        if (!Directory.Exists(Path))
            throw new FileNotFoundException(
                $"{what} is missing: the model uses that folder by path ({Names}, checked by SHA-256); put the folder back at that path (a link to a copy will do), or save the scorer again with its weights embedded.", Path);
        foreach (var (name, expected) in Files)
        {
            var file = System.IO.Path.Combine(Path, name);
            if (!File.Exists(file))
                throw new FileNotFoundException($"{what} has no {name}, which the model expects (SHA-256 {expected}).", file);
        }
        List<string> present;
        try
        {
            present = ModelFiles(Path).Select(System.IO.Path.GetFileName).OfType<string>().ToList();
        }
        catch (FileNotFoundException e)
        {
            throw new InvalidDataException($"{what} has changed since the step scorer was trained: {e.Message}", e);
        }
        if (present.FirstOrDefault(n => !Files.ContainsKey(n)) is { } extra)
            throw new InvalidDataException($"{what} has changed since the step scorer was trained: it has {extra}, which it did not have then (expected only {Names}).");
        foreach (var (name, expected) in Files)
        {
            var actual = FileHashCache.Sha256(System.IO.Path.Combine(Path, name));
            if (actual != expected)
                throw new InvalidDataException($"{what} has changed since the step scorer was trained: {name} has SHA-256 {actual}, the model expects {expected}.");
        }
    }
}
