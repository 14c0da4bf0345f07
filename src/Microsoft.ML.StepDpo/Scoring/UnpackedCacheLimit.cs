using System.Globalization;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// Keeps the per-user cache of unpacked bundles (<see cref="PrivateCacheFolder"/>: one folder per kind, one folder per
/// bundle hash in it) bounded and clean. After a bundle is unpacked, the least recently used bundle folders that no
/// process is using are deleted until all of them together take at most <see cref="MaxBytes"/>; leftovers of
/// interrupted unpacks and deletions (<c>*.tmp-*</c>, <c>*.stale-*</c>) older than an hour go too.
/// </summary>
/// <remarks>
/// A bundle folder <c>&lt;kind&gt;/&lt;sha&gt;</c> is in use while a process holds a shared lock on <c>&lt;kind&gt;/&lt;sha&gt;.lock</c>
/// (<see cref="Use"/>: from before the folder is checked or unpacked until the model has been read from it); the lock
/// file's last-write time is the folder's last use. Eviction takes the lock exclusively, without waiting, so a folder in
/// use is never deleted, and a loader that meets an eviction in progress waits for it and then unpacks again. The locks
/// are the operating system's (released when a process ends or dies), so a crash leaves nothing locked.
/// </remarks>
internal static class UnpackedCacheLimit
{
    /// <summary>The default of <see cref="MaxBytes"/>: 2 GiB (eight scorers of the default embedding limit, 256 MiB).</summary>
    public const long DefaultMaxBytes = 2L << 30;

    /// <summary>
    /// The most bytes all unpacked bundle folders may take together. The environment variable
    /// <c>STEPDPO_CACHE_MAX_MB</c> sets it for a process; default <see cref="DefaultMaxBytes"/>. The folder in use is
    /// never deleted, even when it alone is larger.
    /// </summary>
    internal static long MaxBytes { get; set; } = FromEnvironment();

    /// <summary>How old a leftover <c>*.tmp-*</c> / <c>*.stale-*</c> folder must be before it is deleted.</summary>
    internal static readonly TimeSpan LeftoverAge = TimeSpan.FromHours(1);

    private const string LockSuffix = ".lock";

    private static long FromEnvironment() =>
        long.TryParse(Environment.GetEnvironmentVariable("STEPDPO_CACHE_MAX_MB"), NumberStyles.None, CultureInfo.InvariantCulture, out var mb) && mb > 0
            ? mb << 20
            : DefaultMaxBytes;

    /// <summary>Marks the bundle folder <paramref name="sha"/> of <paramref name="cacheDirectory"/> in use (and used now) until disposed.</summary>
    public static IDisposable Use(string cacheDirectory, string sha)
    {
        Directory.CreateDirectory(cacheDirectory);
        string path = Path.Combine(cacheDirectory, sha + LockSuffix);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                // FileShare other than None: a shared lock (flock LOCK_SH on Unix); an evictor's FileShare.None conflicts with it.
                var held = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                try { File.SetLastWriteTimeUtc(path, DateTime.UtcNow); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the stamp only orders eviction */ }
                return held;
            }
            catch (IOException) when (attempt < 500)
            {
                Thread.Sleep(10); // an eviction of this folder holds the lock for as long as it deletes it
            }
        }
    }

    /// <summary>
    /// Deletes least recently used bundle folders under <paramref name="root"/> (<c>root/&lt;kind&gt;/&lt;sha&gt;</c>) that are not
    /// in use, other than <paramref name="keep"/>, until the rest take at most <paramref name="maxBytes"/>, and leftovers
    /// older than <see cref="LeftoverAge"/>. Returns the folders deleted.
    /// </summary>
    public static List<string> Trim(string root, long maxBytes, string? keep)
    {
        var deleted = new List<string>();
        if (!Directory.Exists(root)) return deleted;
        var now = DateTime.UtcNow;
        var entries = new List<(string Dir, string Lock, DateTime LastUse, long Bytes)>();
        foreach (var kind in Directory.EnumerateDirectories(root))
        {
            foreach (var dir in Directory.EnumerateDirectories(kind))
            {
                string name = Path.GetFileName(dir);
                if (name.Contains(".tmp-", StringComparison.Ordinal) || name.Contains(".stale-", StringComparison.Ordinal))
                {
                    if (now - Directory.GetLastWriteTimeUtc(dir) > LeftoverAge && TryDelete(dir)) deleted.Add(dir);
                    continue;
                }
                string lockPath = dir + LockSuffix;
                var lastUse = File.Exists(lockPath) ? File.GetLastWriteTimeUtc(lockPath) : Directory.GetLastWriteTimeUtc(dir);
                entries.Add((dir, lockPath, lastUse, SizeOf(dir)));
            }
            // Lock files of folders long gone (a day: no loader holds one that long before it locks it).
            foreach (var lockPath in Directory.EnumerateFiles(kind, "*" + LockSuffix))
                if (!Directory.Exists(lockPath[..^LockSuffix.Length]) && now - File.GetLastWriteTimeUtc(lockPath) > TimeSpan.FromDays(1))
                    TryDeleteFile(lockPath);
        }
        long total = entries.Sum(e => e.Bytes);
        foreach (var (dir, lockPath, _, bytes) in entries.OrderBy(e => e.LastUse))
        {
            if (total <= maxBytes) break;
            if (keep is not null && Path.GetFullPath(dir) == Path.TrimEndingDirectorySeparator(Path.GetFullPath(keep))) continue;
            FileStream exclusive;
            try { exclusive = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; } // in use
            using (exclusive)
            {
                if (!TryDelete(dir)) continue;
            }
            deleted.Add(dir);
            total -= bytes;
        }
        return deleted;
    }

    private static long SizeOf(string dir)
    {
        try { return new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return 0; }
    }

    // A rename first (readers that hold files keep them; nobody sees a half-deleted folder under the hash's name), then the delete.
    private static bool TryDelete(string dir)
    {
        var aside = dir.Contains(".stale-", StringComparison.Ordinal) ? dir : dir + ".stale-" + Guid.NewGuid().ToString("N");
        try
        {
            if (aside != dir) Directory.Move(dir, aside);
            Directory.Delete(aside, true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return !Directory.Exists(dir); // moved aside at least: gone from the cache; the rest is a leftover for later
        }
    }

    private static void TryDeleteFile(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
