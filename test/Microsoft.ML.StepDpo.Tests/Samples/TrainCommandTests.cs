using Microsoft.ML.StepDpo.Tests.Training;

namespace Microsoft.ML.StepDpo.Tests.Samples;

/// <summary>The samples app's <c>train</c> command, run as a user runs it.</summary>
[TestClass]
public sealed class TrainCommandTests
{
    [TestMethod]
    public void GradientCheckpointingTrainsToTheSameWeights()
    {
        // Recomputing each layer's activations in the backward pass gives the same gradients, so the same trained model.
        var root = Directory.CreateTempSubdirectory("stepdpo-train-gc-").FullName;
        try
        {
            var modelDir = Path.Combine(root, "base");
            var data = Path.Combine(root, "pairs.jsonl");
            KillAndResumeTests.WriteTinyModelAndData(modelDir, data);
            string[] Args(string output, params string[] more) =>
            [
                "train", "--data", data, "--model", modelDir, "--template", "Q: {instruction}\nA:", "--separator", " ",
                "--epochs", "1", "--batch-size", "4", "--lr", "1e-3", "--max-length", "128", "--seed", "3", "--output", output, .. more,
            ];
            var plain = SamplesRun.Of(Args(Path.Combine(root, "plain")));
            Assert.AreEqual(0, plain.ExitCode, plain.Stdout + plain.Stderr);
            var checkpointed = SamplesRun.Of(Args(Path.Combine(root, "checkpointed"), "--gradient-checkpointing"));
            Assert.AreEqual(0, checkpointed.ExitCode, checkpointed.Stdout + checkpointed.Stderr);
            var before = File.ReadAllBytes(Path.Combine(modelDir, "model.safetensors"));
            var after = File.ReadAllBytes(Path.Combine(root, "checkpointed", "model", "model.safetensors"));
            Assert.IsFalse(before.AsSpan().SequenceEqual(after), "training must have changed the weights");
            CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(root, "plain", "model", "model.safetensors")), after);
        }
        finally { Directory.Delete(root, true); }
    }
}
