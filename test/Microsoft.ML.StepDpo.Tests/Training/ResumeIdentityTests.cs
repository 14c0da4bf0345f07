using System.Collections;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Tests.Text;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;

namespace Microsoft.ML.StepDpo.Tests.Training;

/// <summary>
/// A checkpoint resumes only the run it was made from (the same base model, options that change the math and data);
/// any other run is refused naming each difference, unless it asks to restart; and a trainer's Fit holds its output
/// for the whole run.
/// </summary>
[TestClass]
public sealed class ResumeIdentityTests
{
    private static readonly PromptTemplate Template = new("task", "Q: {instruction}\nA:", " ");

    private string _dir = "";

    [TestInitialize]
    public void Init() => _dir = Directory.CreateTempSubdirectory("stepdpo-resume-").FullName;

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, true);

    private static StepDpoTrainerTests.PairRow[] Pairs(string firstChosen = " 3+4=7.") => new[]
    {
        new StepDpoTrainerTests.PairRow { prompt = "Mia has 3 pens. Mia gets 4 more.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = firstChosen, rejected = " 3+4=8." },
        new StepDpoTrainerTests.PairRow { prompt = "Ben has 5 cards. Ben loses 2.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 5-2=3.", rejected = " 5-2=4." },
        new StepDpoTrainerTests.PairRow { prompt = "Sam has 9 coins. Sam sells 4.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 9-4=5.", rejected = " 9-4=6." },
        new StepDpoTrainerTests.PairRow { prompt = "Ava has 2 boxes of 6.", initial_reason_steps = "Let's think step by step.\nStep 1: 2*6=12.\nStep 2:", chosen = " 12+1=13.", rejected = " 12+1=14." },
    };

    private static (Qwen2ForCausalLM, ByteLevelBpeTokenizer) TinyModel(int seed)
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 32);
        return (Qwen2ForCausalLM.CreateRandom(config, seed: seed), tok);
    }

    private string ModelFolder(int seed)
    {
        var (model, tok) = TinyModel(seed);
        var dir = Path.Combine(_dir, $"model-{seed}");
        ModelCheckpoint.Save(model, dir);
        tok.Save(dir);
        return dir;
    }

    private StepDpoTrainer.Options Options(string baseModel) => new()
    {
        BaseModelPath = baseModel, Template = Template, Beta = 0.4, LearningRate = 1e-3, Epochs = 1, BatchSize = 2,
        WarmupRatio = 0, Seed = 1, LogInterval = 1, MaxLength = 128, MaxPromptLength = 100,
        CheckpointDirectory = Path.Combine(_dir, "checkpoints"), MetricsPath = Path.Combine(_dir, "metrics.jsonl"),
    };

    private static TrainingReport Fit(StepDpoTrainer.Options options, StepDpoTrainerTests.PairRow[]? pairs = null)
    {
        var ml = new MLContext(seed: 1);
        var trainer = ml.StepDpo().Trainers.StepDpo(options);
        trainer.Fit(ml.Data.LoadFromEnumerable(pairs ?? Pairs()));
        return trainer.LastReport!;
    }

    [TestMethod]
    public void AResumeWithAnotherBaseModelBetaOrDataIsRefusedNamingWhatDiffers()
    {
        string modelA = ModelFolder(3), modelB = ModelFolder(4);
        Assert.AreEqual(2, Fit(Options(modelA)).OptimizerSteps);

        var otherModel = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(Options(modelB)));
        StringAssert.Contains(otherModel.Message, "base model sha256: ");
        StringAssert.Contains(otherModel.Message, "RestartFromScratch");
        Assert.DoesNotContain("beta", otherModel.Message, "only what differs is named");

        var o = Options(modelA); o.Beta = 0.2;
        var otherBeta = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(o));
        StringAssert.Contains(otherBeta.Message, "beta: 0.4 → 0.2");
        Assert.DoesNotContain("base model sha256", otherBeta.Message);

        var otherData = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(Options(modelA), Pairs(firstChosen: " 3+4=7!")));
        StringAssert.Contains(otherData.Message, "data sha256: ");
        Assert.DoesNotContain("examples:", otherData.Message, "as many examples, other contents");

        o = Options(modelA); o.Loss = PreferenceLossKind.Ipo; o.UseLora = true;
        var several = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(o));
        StringAssert.Contains(several.Message, "loss: Sigmoid → Ipo");
        StringAssert.Contains(several.Message, "LoRA: off → r=8");

        // The same run resumes (it is complete, so nothing is left to do).
        Assert.AreEqual(2, Fit(Options(modelA)).ResumedFromStep);
    }

    [TestMethod]
    public void WithRestartFromScratchTheOtherRunTrainsFromStepZero()
    {
        string model = ModelFolder(3);
        Fit(Options(model));
        var o = Options(model); o.Beta = 0.2; o.RestartFromScratch = true;
        var report = Fit(o);
        Assert.AreEqual(0, report.ResumedFromStep);
        Assert.AreEqual(2, report.OptimizerSteps);
        Assert.HasCount(2, File.ReadAllLines(o.MetricsPath!), "the metrics file starts over with the run");

        // The new checkpoint is the new run's: it resumes without the option, and the old settings are now refused.
        o.RestartFromScratch = false;
        Assert.AreEqual(2, Fit(o).ResumedFromStep);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => Fit(Options(model))).Message, "beta: 0.2 → 0.4");
    }

    [TestMethod]
    public void ACheckpointFromBeforeIdentitiesWereRecordedIsRefusedClearly()
    {
        string model = ModelFolder(3);
        var o = Options(model);
        Fit(o);
        // The state.json of earlier versions: a step and a fingerprint of the loop's settings only.
        File.WriteAllText(Path.Combine(o.CheckpointDirectory!, "checkpoint-latest", "state.json"),
            "{\"Step\":2,\"Fingerprint\":\"n=4;total=2;bs=2;ga=1;lr=0.001;seed=1\"}");
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => Fit(o));
        StringAssert.Contains(e.Message, "older version");
        StringAssert.Contains(e.Message, "RestartFromScratch");
        o.RestartFromScratch = true;
        Assert.AreEqual(0, Fit(o).ResumedFromStep);
    }

    [TestMethod]
    public void ASecondFitOnTheSameOutputIsRefusedForTheWholeRunNamingTheProcess()
    {
        // The second Fit starts while the first reads its rows, before its optimizer loop starts; an OS file lock
        // conflicts between two handles of one process as between two processes.
        foreach (bool withCheckpoints in new[] { true, false })
        {
            string model = ModelFolder(3);
            StepDpoTrainer.Options first = Options(model), other = Options(model);
            if (!withCheckpoints) first.CheckpointDirectory = other.CheckpointDirectory = null;
            Exception? second = null;
            var ml = new MLContext(seed: 1);
            var rows = new CallbackRows(Pairs(), () => second ??= Assert.ThrowsExactly<InvalidOperationException>(() => Fit(other)));
            ml.StepDpo().Trainers.StepDpo(first).Fit(ml.Data.LoadFromEnumerable(rows));
            Assert.IsNotNull(second, "the rows were read");
            StringAssert.Contains(second.Message, $"is being written by process {Environment.ProcessId}");
            StringAssert.Contains(second.Message, withCheckpoints ? first.CheckpointDirectory! : first.MetricsPath!);
        }
    }

    /// <summary>Rows that call back each time they are enumerated.</summary>
    private sealed class CallbackRows(StepDpoTrainerTests.PairRow[] rows, Action onRead) : IEnumerable<StepDpoTrainerTests.PairRow>
    {
        public IEnumerator<StepDpoTrainerTests.PairRow> GetEnumerator()
        {
            onRead();
            return ((IEnumerable<StepDpoTrainerTests.PairRow>)rows).GetEnumerator();
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
