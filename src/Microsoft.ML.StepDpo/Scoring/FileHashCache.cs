using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// SHA-256 of files that a saved model references (weights of many GB), streamed, and remembered per user by full path,
/// size and last-write time, so that a file is read once rather than at every load. A file whose size or last-write time
/// differs from the record is hashed again. The record is <c>file-hashes.json</c> in the per-user cache folder
/// (owner-only, see <see cref="PrivateCacheFolder"/>), at most <see cref="MaxEntries"/> files, the oldest dropped first.
/// </summary>
/// <remarks>
/// What the record trusts is the file system's size and modification time: a program that rewrites a file and then sets
/// its old time back, or that can write to the owner-only cache folder, is not detected (the same rule as make or rsync).
/// A file that changes while it is hashed is not recorded. Several processes may update the record at once: each
/// merges the file on disk with its own entries and replaces it atomically; an entry lost in a race is hashed again.
/// </remarks>
internal static class FileHashCache
{
    internal const int MaxEntries = 4096;
    private const string FileName = "file-hashes.json";

    private sealed record Entry(string Stamp, string Sha256, long Recorded);

    private static readonly object s_lock = new();
    private static Dictionary<string, Entry>? s_entries;
    private static readonly ConcurrentDictionary<string, int> s_reads = new(StringComparer.Ordinal);

    private static string? s_recordPath;

    /// <summary>The record file; tests point it elsewhere (null: back to the per-user one), which forgets the entries in memory.</summary>
    internal static string? RecordPath
    {
        get => s_recordPath ?? Path.Combine(PrivateCacheFolder.Root, FileName);
        set
        {
            lock (s_lock)
            {
                s_recordPath = value;
                s_entries = null;
            }
        }
    }

    /// <summary>How many times this process read <paramref name="path"/> through SHA-256 (tests: a hit reads nothing).</summary>
    internal static int Reads(string path) => s_reads.GetValueOrDefault(Path.GetFullPath(path));

    /// <summary>How many times this process computed <see cref="OfFolder"/> of <paramref name="directory"/> (tests).</summary>
    internal static int FolderReads(string directory) => s_reads.GetValueOrDefault(FolderKey(directory));

    private static string FolderKey(string directory) => "folder:" + Path.GetFullPath(directory);

    /// <summary>Forgets the entries held in memory, as a new process would (the record on disk stays).</summary>
    internal static void ForgetInMemory()
    {
        lock (s_lock) s_entries = null;
    }

    /// <summary>The lowercase hex SHA-256 of the file's content, from the record when its size and last-write time match.</summary>
    public static string Sha256(string path)
    {
        string full = Path.GetFullPath(path);
        return GetOrCompute(full, () => Stamp(full), () => Hash(full));
    }

    /// <summary>
    /// <see cref="Modeling.ModelHash.OfFolder"/> (one SHA-256 over config.json and the weight files, the identity a
    /// LoRA scorer saved before per-file hashes recorded of its base), from the record while none of those files
    /// changed size or last-write time.
    /// </summary>
    public static string OfFolder(string directory)
    {
        string full = Path.GetFullPath(directory);
        string Stamps() => string.Join("|", new[] { Path.Combine(full, Modeling.ModelCheckpoint.ConfigFile) }
            .Concat(Modeling.ModelCheckpoint.WeightFiles(full)).Select(f => Path.GetFileName(f) + ":" + Stamp(f)));
        return GetOrCompute(FolderKey(full), Stamps, () => Modeling.ModelHash.OfFolder(full));
    }

    private static string GetOrCompute(string key, Func<string> stamp, Func<string> compute)
    {
        string before = stamp();
        lock (s_lock)
        {
            if (Entries().TryGetValue(key, out var e) && e.Stamp == before) return e.Sha256;
            s_entries = null; // another process may have recorded it since this one read the record
            if (Entries().TryGetValue(key, out e) && e.Stamp == before) return e.Sha256;
        }
        string sha = compute();
        s_reads.AddOrUpdate(key, 1, (_, n) => n + 1);
        if (stamp() == before)
            lock (s_lock)
            {
                Entries()[key] = new Entry(before, sha, DateTime.UtcNow.Ticks);
                Save();
            }
        return sha;
    }

    /// <summary>Size and last-write time (UTC ticks) of a file: what says that it may have changed.</summary>
    private static string Stamp(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"'{path}' does not exist.", path);
        return string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{info.Length}:{info.LastWriteTimeUtc.Ticks}");
    }

    private static string Hash(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        return Convert.ToHexString(SHA256.HashData(stream)).ToLowerInvariant();
    }

    private static Dictionary<string, Entry> Entries() => s_entries ??= Read();

    private static Dictionary<string, Entry> Read()
    {
        try
        {
            string path = RecordPath!;
            if (!File.Exists(path)) return new(StringComparer.Ordinal);
            using var stream = File.OpenRead(path);
            return JsonSerializer.Deserialize<Dictionary<string, Entry>>(stream) is { } read
                ? new Dictionary<string, Entry>(read, StringComparer.Ordinal)
                : new(StringComparer.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return new(StringComparer.Ordinal); // an unreadable record only costs hashing again
        }
    }

    // Merges the record on disk (another process's entries) with this process's, keeps the newest MaxEntries, and
    // replaces the file atomically.
    private static void Save()
    {
        var merged = Read();
        foreach (var (key, entry) in s_entries!)
            if (!merged.TryGetValue(key, out var other) || other.Recorded <= entry.Recorded) merged[key] = entry;
        if (merged.Count > MaxEntries)
            merged = merged.OrderByDescending(kv => kv.Value.Recorded).Take(MaxEntries).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        s_entries = merged;
        string path = RecordPath!;
        string tmp = path + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            File.WriteAllText(tmp, JsonSerializer.Serialize(merged));
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            System.Diagnostics.Trace.TraceWarning($"Could not record file hashes in '{path}': {e.Message}");
        }
    }
}
