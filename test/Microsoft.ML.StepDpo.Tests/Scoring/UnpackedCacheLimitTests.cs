using Microsoft.ML.StepDpo.Scoring;

namespace Microsoft.ML.StepDpo.Tests.Scoring;

/// <summary>
/// The cache of unpacked bundles stays within its bound: least recently used folders go first, a folder in use (locked
/// by a loader, in this process or another) and the one just unpacked stay, and leftovers of interrupted unpacks are
/// cleaned. Times are set on the files, so nothing depends on the clock or on machine load.
/// </summary>
[TestClass]
public sealed class UnpackedCacheLimitTests
{
    private static string Entry(string kind, string name, int bytes, DateTime lastUse)
    {
        var dir = Path.Combine(kind, name);
        Directory.CreateDirectory(Path.Combine(dir, "policy"));
        File.WriteAllBytes(Path.Combine(dir, "policy", "model.safetensors"), new byte[bytes]);
        File.WriteAllText(dir + ".lock", "");
        File.SetLastWriteTimeUtc(dir + ".lock", lastUse);
        return dir;
    }

    [TestMethod]
    public void TheLeastRecentlyUsedFoldersNotInUseAreDeletedUntilTheCacheFits()
    {
        var root = Directory.CreateTempSubdirectory("stepdpo-cache-limit-").FullName;
        try
        {
            var now = DateTime.UtcNow;
            var scorers = Path.Combine(root, "stepdpo-scorers");
            var generators = Path.Combine(root, "stepdpo-generators");
            var oldest = Entry(scorers, "a1", 1000, now.AddDays(-3));
            var inUse = Entry(scorers, "b2", 1000, now.AddDays(-2));
            var older = Entry(generators, "c3", 1000, now.AddDays(-1));
            var recent = Entry(scorers, "d4", 1000, now.AddHours(-1));
            var justUnpacked = Entry(scorers, "e5", 1000, now.AddDays(-10)); // kept whatever its time
            var leftover = Path.Combine(scorers, "f6.tmp-123");
            Directory.CreateDirectory(leftover);
            Directory.SetLastWriteTimeUtc(leftover, now.AddHours(-2));
            var freshTmp = Path.Combine(scorers, "f7.tmp-456");
            Directory.CreateDirectory(freshTmp); // an unpack in progress right now

            List<string> deleted;
            // A loader (here or in another process) has held b2 since it last used it: a shared lock on its lock file.
            using (new FileStream(inUse + ".lock", FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
                deleted = UnpackedCacheLimit.Trim(root, maxBytes: 2500, keep: justUnpacked);

            // 5 entries of 1000 B, at most 2500 B: the three oldest not in use and not kept go, oldest first.
            CollectionAssert.AreEquivalent(new[] { leftover, oldest, older, recent }, deleted);
            foreach (var d in new[] { oldest, older, recent, leftover }) Assert.IsFalse(Directory.Exists(d), d);
            foreach (var d in new[] { inUse, justUnpacked, freshTmp }) Assert.IsTrue(Directory.Exists(d), d);
            Assert.IsEmpty(Directory.GetDirectories(scorers, "*.stale-*"), "deleted folders leave nothing behind");

            // Under the bound nothing goes; the folder no longer in use is an ordinary candidate again.
            Assert.IsEmpty(UnpackedCacheLimit.Trim(root, maxBytes: 2000, keep: null));
            CollectionAssert.AreEqual(new[] { inUse }, UnpackedCacheLimit.Trim(root, maxBytes: 1500, keep: justUnpacked));
        }
        finally { Directory.Delete(root, true); }
    }

    [TestMethod]
    public void UsingAFolderMarksItAsRecentlyUsed()
    {
        var root = Directory.CreateTempSubdirectory("stepdpo-cache-limit-").FullName;
        try
        {
            var now = DateTime.UtcNow;
            var scorers = Path.Combine(root, "stepdpo-scorers");
            var a = Entry(scorers, "a1", 1000, now.AddDays(-3));
            var b = Entry(scorers, "b2", 1000, now.AddDays(-2));
            using (UnpackedCacheLimit.Use(scorers, "a1")) { } // a1 used now: b2 is the least recently used
            CollectionAssert.AreEqual(new[] { b }, UnpackedCacheLimit.Trim(root, maxBytes: 1000, keep: null));
            Assert.IsTrue(Directory.Exists(a));
        }
        finally { Directory.Delete(root, true); }
    }
}
