using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Tests.Sampling;

namespace Microsoft.ML.StepDpo.Tests.Samples;

/// <summary>
/// The samples app's promises on bad command lines and awkward data (docs/reliability.md): the input is never
/// destroyed, a misspelled field is never read as "", pass-through fields keep their JSON, one reference-reduction
/// rule, and every failure is one readable line.
/// </summary>
[TestClass]
public sealed class SamplesSafetyTests
{
    /// <summary>A row with a field of every JSON kind, a solution with a boxed 72 and a GSM8K reference ending "#### 72".</summary>
    internal const string TypedRow =
        """{"problem":"Tom has 3 boxes of 24.","solution":"Step 1: 3*24=72.\nThe answer is \\boxed{72}.","answer":"3 boxes of 24 is 72.\n#### 72","verified":true,"id":2,"x":null,"a":[1,{"b":2}],"f":1.50,"s":"text"}""";

    private static string NewFolder() => Directory.CreateTempSubdirectory("stepdpo-samples-").FullName;

    /// <summary>Every field of <paramref name="input"/> is in <paramref name="output"/> with JSON-equal value.</summary>
    internal static void AssertFieldsKept(string input, string output, string what)
    {
        var original = JsonNode.Parse(input)!.AsObject();
        var written = JsonNode.Parse(output)!.AsObject();
        foreach (var (name, value) in original)
            Assert.IsTrue(JsonNode.DeepEquals(value, written[name]) && written.ContainsKey(name),
                $"{what}: field '{name}' was {value?.ToJsonString() ?? "null"}, came back as {written[name]?.ToJsonString() ?? "(missing or null)"}");
    }

    [TestMethod]
    public void OutputEqualToInputIsRefusedUpFrontAndTheInputStaysByteIdentical()
    {
        var dir = NewFolder();
        try
        {
            var input = Path.Combine(dir, "in.jsonl");
            File.WriteAllText(input, TypedRow + "\n");
            var before = File.ReadAllBytes(input);
            var runs = new List<(string What, string[] Args)>
            {
                ("segment", new[] { "segment", "--input", input, "--field", "solution", "--output", input }),
                ("eval", new[] { "eval", "--input", input, "--response-field", "solution", "--reference-field", "answer", "--output", input }),
                ("locate", new[] { "locate", "--input", input, "--problem-field", "problem", "--solution-field", "solution", "--output", input }),
                ("build-pairs", new[] { "build-pairs", "--input", input, "--problem-field", "problem", "--answer-field", "answer", "--output", input,
                    "--endpoint", "http://127.0.0.1:9/v1", "--endpoint-model", "none" }),
                ("tokenize", new[] { "tokenize", "--tokenizer", dir, "--input", input, "--field", "solution", "--output", input }),
                // The same file through another spelling of its path.
                ("segment ./", new[] { "segment", "--input", input, "--field", "solution", "--output", Path.Combine(dir, ".", "in.jsonl") }),
            };
            if (!OperatingSystem.IsWindows())
            {
                var link = Path.Combine(dir, "link.jsonl");
                File.CreateSymbolicLink(link, input);
                runs.Add(("segment via a symbolic link", new[] { "segment", "--input", input, "--field", "solution", "--output", link }));
            }
            foreach (var (what, args) in runs)
            {
                var run = SamplesRun.Of(args);
                run.AssertOneLineError(2, "input");
                CollectionAssert.AreEqual(before, File.ReadAllBytes(input), $"{what} changed its input");
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void AFieldNoRowHasIsAUsageErrorNamingItAndNothingIsWritten()
    {
        var dir = NewFolder();
        try
        {
            var input = Path.Combine(dir, "in.jsonl");
            File.WriteAllText(input, TypedRow + "\n" + TypedRow + "\n");
            var output = Path.Combine(dir, "out.jsonl");

            var eval = SamplesRun.Of("eval", "--input", input, "--response-field", "solutoin", "--reference-field", "answr", "--output", output);
            eval.AssertOneLineError(2, "'solutoin'", "--response-field", "in.jsonl");
            Assert.DoesNotContain("accuracy", eval.Stdout);
            Assert.IsFalse(File.Exists(output));

            var segment = SamplesRun.Of("segment", "--input", input, "--field", "solutoin", "--output", output);
            segment.AssertOneLineError(2, "'solutoin'", "--field");
            Assert.IsFalse(File.Exists(output));
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void PassThroughFieldsKeepTheirJsonAndMissingOutputFoldersAreCreated()
    {
        var dir = NewFolder();
        try
        {
            var input = Path.Combine(dir, "in.jsonl");
            // The second row lacks the solution: counted and reported, read as empty text.
            const string second = """{"problem":"p","answer":"#### 5","id":3.25e2,"verified":false}""";
            File.WriteAllText(input, TypedRow + "\n\n" + second + "\n");
            var outputs = new List<(string What, string Path, SamplesRun Run)>();
            foreach (var (what, args) in new[]
            {
                ("eval", new[] { "eval", "--input", input, "--response-field", "solution", "--reference-field", "answer" }),
                ("segment", new[] { "segment", "--input", input, "--field", "solution" }),
                ("locate", new[] { "locate", "--input", input, "--problem-field", "problem", "--solution-field", "solution", "--answer-field", "answer" }),
            })
            {
                var output = Path.Combine(dir, "new", what, "out.jsonl");
                var run = SamplesRun.Of(args.Concat(new[] { "--output", output }).ToArray());
                Assert.AreEqual(0, run.ExitCode, $"{what}: {run.Stdout}\n{run.Stderr}");
                StringAssert.Contains(run.Stderr, "1 of 2 rows lack the field 'solution'", what);
                outputs.Add((what, output, run));
            }
            foreach (var (what, path, _) in outputs)
            {
                var lines = File.ReadAllLines(path);
                Assert.HasCount(2, lines, what);
                AssertFieldsKept(TypedRow, lines[0], what);
                AssertFieldsKept(second, lines[1], what);
            }
            var evalRow = JsonNode.Parse(File.ReadAllLines(outputs[0].Path)[0])!;
            Assert.IsTrue(evalRow["correct"]!.GetValue<bool>(), "eval: 72 against a '#### 72' reference");
            StringAssert.Contains(outputs[0].Run.Stdout, "accuracy: 0.5000 (n=2)");
            Assert.HasCount(1, JsonNode.Parse(File.ReadAllLines(outputs[1].Path)[0])!["steps"]!.AsArray());
            Assert.AreEqual(-1, JsonNode.Parse(File.ReadAllLines(outputs[2].Path)[0])!["first_error_step"]!.GetValue<int>());
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void AGsm8kReferenceIsReducedToItsFinalNumberByEveryGrader()
    {
        const string reference = "3 boxes of 24 is 72 pens, and 1,000 - 928 = 72.\n#### 72";
        Assert.AreEqual("72", AnswerEquivalence.ReduceReference(reference));
        Assert.AreEqual("1234", AnswerEquivalence.ReduceReference("…\n#### 1,234"));
        Assert.AreEqual("x = 2", AnswerEquivalence.ReduceReference("x = 2"));
        Assert.IsTrue(AnswerEquivalence.IsCorrect("So the answer is \\boxed{72}.", reference));
        Assert.IsFalse(AnswerEquivalence.IsCorrect("So the answer is \\boxed{71}.", reference));

        var ml = new MLContext(seed: 0);
        var data = ml.Data.LoadFromEnumerable(new[]
        {
            new Graded { Response = "The answer is \\boxed{72}.", Answer = reference },
            new Graded { Response = "The answer is \\boxed{1234}.", Answer = "#### 1,234" },
        });
        var metrics = ml.StepDpo().Evaluate(data);
        Assert.AreEqual(2, metrics.Correct);
    }

    private sealed class Graded
    {
        public string Response { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    [TestMethod]
    public void FailuresAreOneReadableLineWithAStackOnlyWithVerbose()
    {
        var dir = NewFolder();
        try
        {
            var input = Path.Combine(dir, "bad.jsonl");
            File.WriteAllText(input, TypedRow + "\n{\"solution\": oops\n");
            var output = Path.Combine(dir, "out.jsonl");
            string[] args = { "eval", "--input", input, "--response-field", "solution", "--reference-field", "answer", "--output", output };

            var plain = SamplesRun.Of(args);
            plain.AssertOneLineError(1, input + ":2:", "invalid JSON");
            Assert.IsFalse(File.Exists(output), "a failed run leaves no output");

            var verbose = SamplesRun.Of(args.Append("--verbose").ToArray());
            Assert.AreEqual(1, verbose.ExitCode);
            StringAssert.StartsWith(verbose.Stderr, "error: " + input + ":2:");
            StringAssert.Contains(verbose.Stderr, "   at ", "--verbose prints the stack");

            // locate reads through ML.NET's parallel cursor, which wraps the reader's exception twice: the line still says what is wrong.
            SamplesRun.Of("locate", "--input", input, "--problem-field", "problem", "--solution-field", "solution", "--output", output)
                .AssertOneLineError(1, input + ":2:", "invalid JSON");

            SamplesRun.Of("segment", "--input", dir, "--field", "solution", "--output", output).AssertOneLineError(2, "is a folder");
            SamplesRun.Of("segment", "--input", Path.Combine(dir, "none.jsonl"), "--field", "solution", "--output", output).AssertOneLineError(2, "none.jsonl", "no such file");
            SamplesRun.Of("segment", "--input", input, "--output", output).AssertOneLineError(2, "--field");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void BuildPairsNeverEmptiesAnOutputItDidNotWrite()
    {
        var dir = NewFolder();
        try
        {
            var input = Path.Combine(dir, "problems.jsonl");
            File.WriteAllText(input, TypedRow + "\n");
            var output = Path.Combine(dir, "pairs.jsonl");
            File.WriteAllText(output, "{\"someone\":\"else's data\"}\n");
            var before = File.ReadAllBytes(output);
            var run = SamplesRun.Of("build-pairs", "--input", input, "--problem-field", "problem", "--answer-field", "answer", "--output", output,
                "--endpoint", "http://127.0.0.1:9/v1", "--endpoint-model", "none");
            run.AssertOneLineError(1, "pairs.jsonl", "progress", "delete it or choose another");
            CollectionAssert.AreEqual(before, File.ReadAllBytes(output));
        }
        finally { Directory.Delete(dir, true); }
    }
    [TestMethod]
    public void BuildPairsSkipsAndCountsAProblemBeyondTheModelsContext()
    {
        var dir = NewFolder();
        try
        {
            // A model folder with a 128-token context (character tokens) that answers " 7*4=28." after "Step 1:".
            var modelDir = Path.Combine(dir, "model");
            var (model, tokenizer) = BigramModel.Create(BigramModel.Chain(':', " 7*4=28."), context: 128);
            using (model) ModelCheckpoint.Save(model, modelDir);
            tokenizer.Save(modelDir);
            var input = Path.Combine(dir, "problems.jsonl");
            string longProblem = "Tom counts " + string.Join(", ", Enumerable.Range(1, 60)) + ". How many numbers?";
            File.WriteAllLines(input, new[]
            {
                new JsonObject { ["problem"] = "Tom has 7 bags of 4 apples.", ["answer"] = "28" }.ToJsonString(),
                new JsonObject { ["problem"] = longProblem, ["answer"] = "60" }.ToJsonString(),
            });
            string[] Args(string output, params string[] more) => new[]
            {
                "build-pairs", "--input", input, "--problem-field", "problem", "--answer-field", "answer", "--output", output, "--model", modelDir,
                "--template", "plain", "--samples", "2", "--rollouts", "2", "--rectifications", "2", "--max-new-tokens", "12", "--concurrency", "2",
            }.Concat(more).ToArray();

            var run = SamplesRun.Of(Args(Path.Combine(dir, "pairs.jsonl")));
            Assert.AreEqual(0, run.ExitCode, run.Stdout + run.Stderr);
            StringAssert.Matches(run.Stdout, new System.Text.RegularExpressions.Regex(@"beyond context\s*│\s*1\s"), run.Stdout);
            StringAssert.Contains(run.Stderr, "warning: 1 of 2 problems do not fit the model's context", run.Stderr);
            Assert.HasCount(2, File.ReadAllLines(Path.Combine(dir, "pairs.jsonl.progress.jsonl")));

            SamplesRun.Of(Args(Path.Combine(dir, "strict.jsonl"), "--fail-beyond-context"))
                .AssertOneLineError(1, "Tom counts 1, 2, 3", "max_position_embeddings) is 128");
        }
        finally { Directory.Delete(dir, true); }
    }
}
