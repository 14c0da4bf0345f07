using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;

namespace Microsoft.ML.StepDpo.Tests.Samples;

/// <summary>`score` with a tiny saved scorer: pass-through JSON kept, output = input refused, a malformed line named.</summary>
[TestClass]
public sealed class ScoreCommandSafetyTests
{
    public sealed class Pair
    {
        public string prompt { get; set; } = "";
        public string initial_reason_steps { get; set; } = "";
        public string chosen { get; set; } = "";
        public string rejected { get; set; } = "";
    }

    public sealed class ScoreInput
    {
        public string prompt { get; set; } = "";
        public string solution { get; set; } = "";
    }

    /// <summary>A scorer trained for one epoch on two pairs with a random 2-layer model: only its plumbing matters here.</summary>
    private static void SaveTinyScorer(string zip)
    {
        var ml = new MLContext(seed: 1);
        var tok = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        var config = Qwen2Config.Tiny(vocab: tok.VocabularySize, hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 32);
        var options = new StepDpoTrainer.Options
        {
            BaseModel = Qwen2ForCausalLM.CreateRandom(config, seed: 3), BaseTokenizer = tok,
            Template = new PromptTemplate("task", "Q: {instruction}\nA:", " "), Epochs = 1, BatchSize = 2, WarmupRatio = 0, Seed = 1,
            MaxLength = 128, MaxPromptLength = 100,
        };
        var pairs = new[]
        {
            new Pair { prompt = "Mia has 3 pens.", initial_reason_steps = "Step 1:", chosen = " 3+4=7.", rejected = " 3+4=8." },
            new Pair { prompt = "Ben has 5 cards.", initial_reason_steps = "Step 1:", chosen = " 5-2=3.", rejected = " 5-2=4." },
        };
        var scorer = ml.StepDpo().Trainers.StepDpo(options).Fit(ml.Data.LoadFromEnumerable(pairs));
        ml.Model.Save(scorer, ml.Data.LoadFromEnumerable(new[] { new ScoreInput() }).Schema, zip);
    }

    [TestMethod]
    public void ScoreAndApplyModelKeepPassThroughJsonRefuseTheirInputAsOutputAndNameAMalformedLine()
    {
        var dir = Directory.CreateTempSubdirectory("stepdpo-score-").FullName;
        try
        {
            var zip = Path.Combine(dir, "scorer.zip");
            SaveTinyScorer(zip);
            var input = Path.Combine(dir, "in.jsonl");
            File.WriteAllText(input, SamplesSafetyTests.TypedRow + "\n");

            // A solution longer than the model's context (2048 character tokens): the steps beyond it have no reward,
            // written as null (JSON has no NaN) and counted, instead of failing the row.
            var longInput = Path.Combine(dir, "long.jsonl");
            string longSolution = "Let's think step by step.\n" + string.Join("\n", Enumerable.Range(1, 250).Select(k => $"Step {k}: {k}+1={k + 1}."));
            File.WriteAllText(longInput, new JsonObject { ["problem"] = "Mia counts.", ["solution"] = longSolution }.ToJsonString() + "\n");
            var longOutput = Path.Combine(dir, "long-scored.jsonl");
            var longRun = SamplesRun.Of("score", "--model", zip, "--input", longInput, "--prompt-field", "problem", "--solution-field", "solution", "--output", longOutput);
            Assert.AreEqual(0, longRun.ExitCode, longRun.Stdout + longRun.Stderr);
            var rewards = JsonNode.Parse(File.ReadAllLines(longOutput).Single())!["step_rewards"]!.AsArray();
            Assert.AreEqual(250, rewards.Count);
            Assert.IsNotNull(rewards[0], "the first steps fit the context");
            Assert.IsNull(rewards[249], "the last steps lie beyond it");
            // The warning counts exactly the steps written as null.
            int unscored = rewards.Count(r => r is null);
            Assert.IsTrue(unscored is > 0 and < 250, $"{unscored} steps unscored");
            StringAssert.Contains(longRun.Stderr, $"warning: {unscored} steps lie beyond the model's context", longRun.Stderr);

            var output = Path.Combine(dir, "new", "scored.jsonl");
            var ok = SamplesRun.Of("score", "--model", zip, "--input", input, "--prompt-field", "problem", "--solution-field", "solution", "--output", output);
            Assert.AreEqual(0, ok.ExitCode, ok.Stdout + ok.Stderr);
            var line = File.ReadAllLines(output).Single();
            SamplesSafetyTests.AssertFieldsKept(SamplesSafetyTests.TypedRow, line, "score");
            Assert.IsNotNull(JsonNode.Parse(line)!["step_rewards"]);

            // apply-model copies input rows too: every field comes back as it was, then the model's columns.
            var promptInput = Path.Combine(dir, "prompts.jsonl");
            var promptRow = SamplesSafetyTests.TypedRow.Replace("\"problem\":", "\"prompt\":", StringComparison.Ordinal);
            File.WriteAllText(promptInput, promptRow + "\n");
            var applied = Path.Combine(dir, "applied", "out.jsonl");
            var apply = SamplesRun.Of("apply-model", "--model", zip, "--input", promptInput, "--fields", "prompt", "solution", "--output", applied);
            Assert.AreEqual(0, apply.ExitCode, apply.Stdout + apply.Stderr);
            var appliedLine = File.ReadAllLines(applied).Single();
            SamplesSafetyTests.AssertFieldsKept(promptRow, appliedLine, "apply-model");
            Assert.IsNotNull(JsonNode.Parse(appliedLine)!["StepRewards"]);

            // A misspelled field: a usage error before the model is loaded.
            SamplesRun.Of("score", "--model", zip, "--input", input, "--prompt-field", "problme", "--solution-field", "solution", "--output", output)
                .AssertOneLineError(2, "'problme'", "--prompt-field");

            // Output = input with a malformed second line: refused up front, the input untouched.
            File.WriteAllText(input, SamplesSafetyTests.TypedRow + "\n{\"problem\": oops\n");
            var before = File.ReadAllBytes(input);
            SamplesRun.Of("score", "--model", zip, "--input", input, "--prompt-field", "problem", "--solution-field", "solution", "--output", input)
                .AssertOneLineError(2, "input");
            CollectionAssert.AreEqual(before, File.ReadAllBytes(input));

            // The malformed line is named by file and line; the earlier output stays as it was.
            var previous = File.ReadAllBytes(output);
            SamplesRun.Of("score", "--model", zip, "--input", input, "--prompt-field", "problem", "--solution-field", "solution", "--output", output)
                .AssertOneLineError(1, input + ":2:", "invalid JSON");
            CollectionAssert.AreEqual(previous, File.ReadAllBytes(output));
        }
        finally { Directory.Delete(dir, true); }
    }
}
