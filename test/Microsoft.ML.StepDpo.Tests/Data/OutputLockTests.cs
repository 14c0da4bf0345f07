using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Tests.Training;
using Microsoft.ML.StepDpo.Training;

namespace Microsoft.ML.StepDpo.Tests.Data;

/// <summary>
/// One writer per output: a second writer of a step-preference file or of a checkpoint folder is refused at once,
/// naming the holder's process id, instead of tearing the first one's files. (The lock is an OS file lock, which
/// conflicts between two handles of one process as between two processes, so these tests need no second process.)
/// </summary>
[TestClass]
public sealed class OutputLockTests
{
    private string _dir = "";

    [TestInitialize]
    public void Init() => _dir = Directory.CreateTempSubdirectory("stepdpo-lock-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, true);

    [TestMethod]
    public void ASecondWriterOfAPairsFileIsRefusedWithTheHoldersProcessId()
    {
        string pairs = Path.Combine(_dir, "pairs.jsonl");
        using (new ResumableOutput(pairs, null))
        {
            var e = Assert.ThrowsExactly<InvalidOperationException>(() => new ResumableOutput(pairs, null));
            StringAssert.Contains(e.Message, pairs);
            StringAssert.Contains(e.Message, $"process {Environment.ProcessId}");
        }
        // Released with the first writer: the file can be resumed by the next run.
        using (new ResumableOutput(pairs, null)) { }
    }

    [TestMethod]
    public void ASecondTrainingRunOnACheckpointFolderIsRefused()
    {
        string checkpoints = Path.Combine(_dir, "checkpoints");
        var loop = new TrainingLoop<TokenizedPair>(ToyLanguageModel.Create(3), new PreferenceObjective { Beta = 0.4, ReferenceModel = ToyLanguageModel.Create(3) },
            new TrainingLoopOptions { Epochs = 1, BatchSize = 4, LearningRate = 1e-3, Seed = 1, CheckpointDirectory = checkpoints });
        using (OutputLock.ForFolder(checkpoints, "The checkpoint folder"))
        {
            var e = Assert.ThrowsExactly<InvalidOperationException>(() => loop.Run(TrainingLoopTests.Pairs(8, 1)));
            StringAssert.Contains(e.Message, "is being written by process");
            Assert.IsFalse(Directory.EnumerateDirectories(checkpoints).Any(), "the refused run wrote no checkpoint");
        }
        loop.Run(TrainingLoopTests.Pairs(8, 1));
        Assert.IsTrue(Directory.Exists(Path.Combine(checkpoints, TrainingLoop<TokenizedPair>.LatestName)));
    }
}
