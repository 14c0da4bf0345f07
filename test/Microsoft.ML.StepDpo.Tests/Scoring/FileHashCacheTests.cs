using Microsoft.ML.StepDpo.Scoring;

namespace Microsoft.ML.StepDpo.Tests.Scoring;

/// <summary>
/// A referenced weight file is hashed once per content: the per-user record answers while its size and last-write time
/// are unchanged (in this process and, through the record file, in the next), and a file whose time or size changed is
/// read again. Each test records into a file of its own, so that other processes of this user (which share the
/// per-user record) neither see nor disturb it.
/// </summary>
[TestClass]
public sealed class FileHashCacheTests
{
    [TestMethod]
    public void AFileIsHashedOnceUntilItsSizeOrTimeChanges()
    {
        var dir = Directory.CreateTempSubdirectory("stepdpo-hashes-").FullName;
        FileHashCache.RecordPath = Path.Combine(dir, "file-hashes.json");
        try
        {
            var file = Path.Combine(dir, "model.safetensors");
            var content = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 31)).ToArray();
            File.WriteAllBytes(file, content);
            string expected = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(content)).ToLowerInvariant();

            Assert.AreEqual(expected, FileHashCache.Sha256(file));
            Assert.AreEqual(1, FileHashCache.Reads(file));
            Assert.AreEqual(expected, FileHashCache.Sha256(file));
            Assert.AreEqual(1, FileHashCache.Reads(file), "a hit reads nothing");
            Assert.IsTrue(File.ReadAllText(FileHashCache.RecordPath!).Contains(expected, StringComparison.Ordinal), "recorded on disk");

            FileHashCache.ForgetInMemory(); // as a new process: the record on disk answers
            Assert.AreEqual(expected, FileHashCache.Sha256(file));
            Assert.AreEqual(1, FileHashCache.Reads(file), "the next process does not read it either");

            File.SetLastWriteTimeUtc(file, File.GetLastWriteTimeUtc(file).AddSeconds(3)); // touched, same content
            Assert.AreEqual(expected, FileHashCache.Sha256(file));
            Assert.AreEqual(2, FileHashCache.Reads(file), "a new last-write time is a miss");

            content[1000] ^= 1;
            File.WriteAllBytes(file, content.Append((byte)0).ToArray()); // new content and size
            string changed = FileHashCache.Sha256(file);
            Assert.AreNotEqual(expected, changed);
            Assert.AreEqual(3, FileHashCache.Reads(file));
            Assert.AreEqual(changed, FileHashCache.Sha256(file));
            Assert.AreEqual(3, FileHashCache.Reads(file));
        }
        finally
        {
            FileHashCache.RecordPath = null;
            Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    public void AnUnreadableRecordOnlyCostsHashingAgain()
    {
        var dir = Directory.CreateTempSubdirectory("stepdpo-hashes-").FullName;
        var record = Path.Combine(dir, "file-hashes.json");
        FileHashCache.RecordPath = record;
        try
        {
            var file = Path.Combine(dir, "config.json");
            File.WriteAllText(file, "{}");
            string expected = FileHashCache.Sha256(file);
            File.WriteAllText(record, "{ not json");
            FileHashCache.ForgetInMemory();
            Assert.AreEqual(expected, FileHashCache.Sha256(file));
            Assert.AreEqual(2, FileHashCache.Reads(file));
            StringAssert.Contains(File.ReadAllText(record), expected, "the record is written afresh");
        }
        finally
        {
            FileHashCache.RecordPath = null;
            Directory.Delete(dir, true);
        }
    }
}
