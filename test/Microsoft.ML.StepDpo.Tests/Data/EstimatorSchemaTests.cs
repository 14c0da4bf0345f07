using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;
using Microsoft.ML.StepDpo.Verification;

namespace Microsoft.ML.StepDpo.Tests.Data;

/// <summary>
/// Every estimator's GetOutputSchema describes what its fitted transformer produces, and a missing or mistyped input
/// column fails GetOutputSchema and Fit with the same ML.NET-style message naming the column.
/// </summary>
[TestClass]
public sealed class EstimatorSchemaTests
{
    public sealed class SolutionRow
    {
        public string Problem { get; set; } = "";
        public string Solution { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    public sealed class StepsRow
    {
        public string Problem { get; set; } = "";
        public string[] Steps { get; set; } = Array.Empty<string>();
        public string Answer { get; set; } = "";
    }

    public sealed class PairAndSolutionRow
    {
        public string prompt { get; set; } = "";
        public string initial_reason_steps { get; set; } = "";
        public string chosen { get; set; } = "";
        public string rejected { get; set; } = "";
        public string solution { get; set; } = "";
    }

    public sealed class PromptResponseRow
    {
        public string prompt { get; set; } = "";
        public string response { get; set; } = "";
    }

    public sealed class NumericSolution
    {
        public string Problem { get; set; } = "";
        public float Solution { get; set; }
    }

    public sealed class ScalarSteps
    {
        public string Problem { get; set; } = "";
        public string Steps { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    public sealed class PairWithNumericChosen
    {
        public string prompt { get; set; } = "";
        public string initial_reason_steps { get; set; } = "";
        public float chosen { get; set; }
        public string rejected { get; set; } = "";
    }

    public sealed class PromptOnly
    {
        public string prompt { get; set; } = "";
    }

    private sealed class NoInput { }

    /// <summary>The SchemaShape of data loaded from <typeparamref name="TRow"/> (ML.NET's SchemaShape.Create is internal).</summary>
    private static SchemaShape ShapeOf<TRow>(MLContext ml) where TRow : class, new()
    {
        var shape = ml.Transforms.CustomMapping<NoInput, TRow>((_, _) => { }, contractName: null)
            .GetOutputSchema(new SchemaShape(Array.Empty<SchemaShape.Column>()));
        AssertSameColumns(shape, ml.Data.LoadFromEnumerable(Array.Empty<TRow>()).Schema, "the probe describes the loaded data");
        return shape;
    }

    private static void AssertSameColumns(SchemaShape expected, DataViewSchema actual, string what)
    {
        var visible = actual.Where(c => !c.IsHidden).ToList();
        CollectionAssert.AreEquivalent(expected.Select(c => c.Name).ToList(), visible.Select(c => c.Name).ToList(), what);
        foreach (var col in visible)
        {
            var shape = expected.Single(c => c.Name == col.Name);
            var (kind, item) = col.Type is VectorDataViewType v
                ? (v.Size == 0 ? SchemaShape.Column.VectorKind.VariableVector : SchemaShape.Column.VectorKind.Vector, v.ItemType)
                : (SchemaShape.Column.VectorKind.Scalar, col.Type);
            Assert.AreEqual(kind, shape.Kind, $"{what}: kind of '{col.Name}'");
            Assert.AreEqual(item, shape.ItemType, $"{what}: item type of '{col.Name}'");
            Assert.AreEqual(item is KeyDataViewType, shape.IsKey, $"{what}: key-ness of '{col.Name}'");
        }
    }

    private static void AssertOutputSchemaIsTheFittedOne<TRow>(MLContext ml, IEstimator<ITransformer> estimator, TRow[] rows) where TRow : class, new()
    {
        var data = ml.Data.LoadFromEnumerable(rows);
        var predicted = estimator.GetOutputSchema(ShapeOf<TRow>(ml));
        var actual = estimator.Fit(data).Transform(data).Schema;
        AssertSameColumns(predicted, actual, estimator.GetType().Name);
    }

    /// <summary>GetOutputSchema and Fit both throw ArgumentOutOfRangeException("inputSchema") with exactly <paramref name="message"/>.</summary>
    private static void AssertBothReject<TRow>(MLContext ml, IEstimator<ITransformer> estimator, TRow row, string message) where TRow : class, new()
    {
        var fromShape = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(ShapeOf<TRow>(ml)));
        var fromFit = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => estimator.Fit(ml.Data.LoadFromEnumerable(new[] { row })));
        foreach (var e in new[] { fromShape, fromFit })
        {
            Assert.AreEqual("inputSchema", e.ParamName);
            StringAssert.StartsWith(e.Message, message);
        }
        Assert.AreEqual(fromShape.Message, fromFit.Message);
    }

    private static (Qwen2ForCausalLM, ByteLevelBpeTokenizer) TinyModel()
    {
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        return (Qwen2ForCausalLM.CreateRandom(Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 32), seed: 3), tok);
    }

    private static readonly PromptTemplate s_template = new("qa", "Q: {instruction}\nA:", " ");

    private static StepDpoTrainer.Options DpoOptions()
    {
        var (model, tok) = TinyModel();
        return new() { BaseModel = model, BaseTokenizer = tok, Template = s_template, Epochs = 1, BatchSize = 2, Seed = 1, MaxLength = 128, MaxPromptLength = 96 };
    }

    private static SftTrainer.Options SftOptions()
    {
        var (model, tok) = TinyModel();
        return new() { BaseModel = model, BaseTokenizer = tok, Template = s_template, Epochs = 1, BatchSize = 2, Seed = 1, MaxNewTokens = 2 };
    }

    private static readonly SolutionRow[] s_solutions =
    {
        new() { Problem = "Mia has 3 pens and gets 4.", Solution = "Let's think step by step.\nStep 1: 3+4=8.\nThe answer is 8.", Answer = "7" },
    };

    private static readonly PairAndSolutionRow[] s_pairs =
    {
        new() { prompt = "Mia has 3 pens and gets 4.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 3+4=7.", rejected = " 3+4=8.",
                solution = "Let's think step by step.\nStep 1: 3+4=7.\nThe answer is 7." },
        new() { prompt = "Ben has 5 and loses 2.", initial_reason_steps = "Let's think step by step.\nStep 1:", chosen = " 5-2=3.", rejected = " 5-2=4.",
                solution = "Let's think step by step.\nStep 1: 5-2=4.\nThe answer is 4." },
    };

    [TestMethod]
    public void TheTransformsDescribeWhatTheyProduce()
    {
        var ml = new MLContext(seed: 1);
        AssertOutputSchemaIsTheFittedOne(ml, ml.Transforms.SegmentSteps(new StepSegmenter.Options
        {
            InputColumnName = "Solution", StepCountColumnName = "StepCount", StepOffsetsColumnName = "Offsets",
        }), s_solutions);
        // An output that reuses an input name replaces that column.
        AssertOutputSchemaIsTheFittedOne(ml, ml.Transforms.ExtractAnswer("Answer", "Solution"), s_solutions);
        AssertOutputSchemaIsTheFittedOne(ml, ml.Transforms.LocateFirstError(),
            new[] { new StepsRow { Problem = "p", Steps = new[] { "1+1=3." }, Answer = "2" } });
    }

    [TestMethod]
    public void TheTrainersDescribeWhatTheirFittedTransformersProduce()
    {
        var ml = new MLContext(seed: 1);
        // The step scorer adds its four columns to data that has the prompt and solution columns.
        AssertOutputSchemaIsTheFittedOne(ml, ml.StepDpo().Trainers.StepDpo(DpoOptions()), s_pairs);
        var renamed = DpoOptions();
        renamed.ScoringColumns = new() { StepRewards = "R", TotalReward = "T", FirstErrorStep = "prompt_error", StepCount = "chosen" };
        AssertOutputSchemaIsTheFittedOne(ml, ml.StepDpo().Trainers.StepDpo(renamed), s_pairs);
        AssertOutputSchemaIsTheFittedOne(ml, ml.StepDpo().Trainers.Dpo(DpoOptions()), s_pairs);
        // The generating transformer adds the generated text.
        AssertOutputSchemaIsTheFittedOne(ml, ml.StepDpo().Trainers.Sft(SftOptions()),
            new[] { new PromptResponseRow { prompt = "2+3", response = "5" }, new PromptResponseRow { prompt = "1+1", response = "2" } });
    }

    [TestMethod]
    public void AMissingOrMistypedColumnGivesOneMessageNamingIt()
    {
        var ml = new MLContext(seed: 1);
        var segment = ml.Transforms.SegmentSteps("Steps", "Solution");
        AssertBothReject(ml, segment, new SolutionRowWithoutSolution(), "Could not find input column 'Solution'");
        AssertBothReject(ml, segment, new NumericSolution(), "Schema mismatch for input column 'Solution': expected String, got Single");

        var extract = ml.Transforms.ExtractAnswer("Extracted", "Solution");
        AssertBothReject(ml, extract, new NumericSolution(), "Schema mismatch for input column 'Solution': expected String, got Single");

        var locate = ml.Transforms.LocateFirstError();
        AssertBothReject(ml, locate, new ScalarSteps(), "Schema mismatch for input column 'Steps': expected Vector<String>, got String");
        AssertBothReject(ml, locate, new SolutionRow(), "Could not find input column 'Steps'");

        var stepDpo = ml.StepDpo().Trainers.StepDpo(DpoOptions());
        AssertBothReject(ml, stepDpo, new PromptOnly(), "Could not find input column 'initial_reason_steps'");
        AssertBothReject(ml, stepDpo, new PairWithNumericChosen(), "Schema mismatch for input column 'chosen': expected String, got Single");
        AssertBothReject(ml, ml.StepDpo().Trainers.Dpo(DpoOptions()), new PromptOnly(), "Could not find input column 'chosen'");

        var sft = ml.StepDpo().Trainers.Sft(SftOptions());
        AssertBothReject(ml, sft, new PromptOnly(), "Could not find input column 'response'");
        Assert.IsNull(sft.LastReport, "nothing was trained");
    }

    public sealed class SolutionRowWithoutSolution
    {
        public string Problem { get; set; } = "";
    }
}
