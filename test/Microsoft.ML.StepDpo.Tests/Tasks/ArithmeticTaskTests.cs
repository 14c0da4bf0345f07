using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.StepDpo.Tasks;

namespace Microsoft.ML.StepDpo.Tests.Tasks;

[TestClass]
public sealed class ArithmeticTaskTests
{
    private static readonly Regex s_stepLine = new(@"^Step (\d+): (\d+)([+\-*])(\d+)=(\d+)\.$", RegexOptions.CultureInvariant);

    [TestMethod]
    public void FormatSolutionWritesTheStepDpoFormatExactly()
    {
        string solution = ArithmeticTask.FormatSolution(["6*9=54.", "12+54=66.", "66+24=90."], 90);
        Assert.AreEqual("Let's think step by step.\nStep 1: 6*9=54.\nStep 2: 12+54=66.\nStep 3: 66+24=90.\nThe answer is 90.", solution);
    }

    [TestMethod]
    public void SameSeedGivesSameProblemsAndOtherSeedsDiffer()
    {
        var a = ArithmeticTask.Generate(ArithmeticTaskOptions.Default, 200, seed: 7, TaskSplit.Train);
        var b = ArithmeticTask.Generate(ArithmeticTaskOptions.Default, 200, seed: 7, TaskSplit.Train);
        var c = ArithmeticTask.Generate(ArithmeticTaskOptions.Default, 200, seed: 8, TaskSplit.Train);
        CollectionAssert.AreEqual(a.Select(p => p.Solution + p.Question).ToList(), b.Select(p => p.Solution + p.Question).ToList());
        Assert.IsLessThan(20, a.Select(p => p.Question).Intersect(c.Select(p => p.Question)).Count());
        Assert.AreEqual(200, a.Select(p => p.Question).Distinct().Count());
        Assert.AreEqual(200, a.Select(p => p.Id).Distinct().Count());
    }

    [TestMethod]
    [DataRow("Easy")]
    [DataRow("Default")]
    [DataRow("Hard")]
    public void GoldSolutionsAreWellFormedCorrectAndAnswerTheQuestion(string preset)
    {
        var options = Preset(preset);
        foreach (var p in ArithmeticTask.Generate(options, 400, seed: 1, TaskSplit.Train))
        {
            var lines = p.Solution.Split('\n');
            Assert.AreEqual("Let's think step by step.", lines[0]);
            Assert.AreEqual($"The answer is {p.Answer}.", lines[^1]);
            Assert.AreEqual(p.Steps.Count, lines.Length - 2);
            Assert.IsTrue(p.Steps.Count >= options.MinSteps && p.Steps.Count <= options.MaxSteps, p.Solution);
            int last = -1;
            for (int i = 0; i < p.Steps.Count; i++)
            {
                var m = s_stepLine.Match(lines[i + 1]);
                Assert.IsTrue(m.Success, lines[i + 1]);
                Assert.AreEqual(i + 1, int.Parse(m.Groups[1].Value));
                Assert.AreEqual(lines[i + 1], $"Step {i + 1}: {p.Steps[i]}");
                long x = long.Parse(m.Groups[2].Value), y = long.Parse(m.Groups[4].Value), z = long.Parse(m.Groups[5].Value);
                long expected = m.Groups[3].Value switch { "+" => x + y, "-" => x - y, _ => x * y };
                Assert.AreEqual(expected, z, lines[i + 1]);
                Assert.IsTrue(z >= 0 && z <= options.MaxValue, lines[i + 1]);
                last = (int)z;
            }

            Assert.AreEqual(last, p.Answer);
            // An independent reading of the question text reaches the same answer.
            Assert.AreEqual(p.Answer, SolveQuestion(p.Question), p.Question);
            Assert.AreEqual(p.Solution, ArithmeticTask.FormatSolution(p.Steps, p.Answer));
        }
    }

    [TestMethod]
    public void ExampleShapedQuestionIsProduced()
    {
        var all = ArithmeticTask.Generate(ArithmeticTaskOptions.Default, 500, seed: 3, TaskSplit.Train);
        // Some problem mixes a group event (two steps: a*b, then x+/-ab) with single-step events.
        var p = all.First(q => Regex.IsMatch(q.Question, @"boxes of|bags of|friends") && q.Steps.Count >= 3);
        StringAssert.Matches(p.Question, new Regex(@"^[A-Z][a-z]+ has \d+ [a-z]+\. .* How many [a-z]+ now\?$"));
    }

    [TestMethod]
    public void OperationsOptionRestrictsTheSteps()
    {
        var options = ArithmeticTaskOptions.Easy;
        options.Operations = ArithmeticOperations.Add | ArithmeticOperations.Subtract;
        var problems = ArithmeticTask.Generate(options, 300, seed: 2, TaskSplit.Train);
        Assert.IsFalse(problems.Any(p => p.Steps.Any(s => s.Contains('*'))));
        Assert.IsTrue(problems.Any(p => p.Steps.Any(s => s.Contains('-'))));
        Assert.IsTrue(problems.Any(p => p.Steps.Any(s => s.Contains('+'))));

        options.Operations = ArithmeticOperations.Multiply | ArithmeticOperations.Add;
        problems = ArithmeticTask.Generate(options, 300, seed: 2, TaskSplit.Train);
        Assert.IsFalse(problems.Any(p => p.Steps.Any(s => s.Contains('-'))));
        Assert.IsTrue(problems.Any(p => p.Steps.Any(s => s.Contains('*'))));
    }

    [TestMethod]
    public void EasyPresetKeepsNumbersSmall()
    {
        var o = ArithmeticTaskOptions.Easy;
        foreach (var p in ArithmeticTask.Generate(o, 500, seed: 4, TaskSplit.HeldOut))
        {
            Assert.IsTrue(p.Steps.Count is >= 2 and <= 3);
            foreach (Match m in Regex.Matches(p.Question + p.Solution, @"\d+"))
                Assert.IsLessThanOrEqualTo(o.MaxValue, int.Parse(m.Value), p.Question);
            // Operands stated in the question stay within 2 digits.
            foreach (Match m in Regex.Matches(p.Question, @"\d+"))
                Assert.IsLessThanOrEqualTo(2, m.Value.Length, p.Question);
        }
    }

    [TestMethod]
    public void TrainAndHeldOutNeverShareAProblemOrAComputation()
    {
        var options = ArithmeticTaskOptions.Easy;
        var train = ArithmeticTask.Generate(options, 3000, seed: 1, TaskSplit.Train)
            .Concat(ArithmeticTask.Generate(options, 3000, seed: 2, TaskSplit.Train)).ToList();
        var heldOut = ArithmeticTask.Generate(options, 1000, seed: 1, TaskSplit.HeldOut)
            .Concat(ArithmeticTask.Generate(options, 1000, seed: 99, TaskSplit.HeldOut)).ToList();

        Assert.IsEmpty(train.Select(p => p.Question).Intersect(heldOut.Select(p => p.Question)).ToList());
        Assert.IsEmpty(train.Select(p => p.Id).Intersect(heldOut.Select(p => p.Id)).ToList());
        // Stronger: no held-out problem repeats a training problem's calculations with other names or words.
        static string Computation(ArithmeticProblem p) => Regex.Match(p.Question, @"\d+").Value + "|" + string.Join("|", p.Steps);
        var trainComputations = train.Select(Computation).ToHashSet();
        var shared = heldOut.Where(p => trainComputations.Contains(Computation(p))).Select(p => p.Question).ToList();
        Assert.IsEmpty(shared, string.Join("\n", shared.Take(5)));
        // The sets are not trivially disjoint: with this many draws the small Easy space repeats computations within a split.
        Assert.IsLessThan(train.Count, trainComputations.Count);
    }

    [TestMethod]
    public void AlphabetCoversEveryCharacterAndEachIsUsed()
    {
        var alphabet = ArithmeticTask.Alphabet.ToHashSet();
        var used = new HashSet<char>();
        foreach (var preset in new[] { "Easy", "Default", "Hard" })
        {
            foreach (var p in ArithmeticTask.Generate(Preset(preset), 1000, seed: 5, TaskSplit.Train))
            {
                foreach (char c in p.Question + "\n" + p.Solution)
                {
                    Assert.Contains(c, alphabet, $"'{c}' in {p.Question}");
                    used.Add(c);
                }
            }
        }

        CollectionAssert.AreEquivalent(alphabet.ToList(), used.ToList());
        Assert.IsLessThan(60, alphabet.Count);
    }

    [TestMethod]
    public void Gsm8kJsonlRoundTripsQuestionAndAnswer()
    {
        var problems = ArithmeticTask.Generate(ArithmeticTaskOptions.Default, 50, seed: 6, TaskSplit.HeldOut);
        var writer = new StringWriter();
        ArithmeticTask.WriteGsm8kJsonl(problems, writer);
        var lines = writer.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.HasCount(50, lines);
        for (int i = 0; i < lines.Length; i++)
        {
            using var doc = JsonDocument.Parse(lines[i]);
            var root = doc.RootElement;
            Assert.AreEqual(problems[i].Question, root.GetProperty("question").GetString());
            string answer = root.GetProperty("answer").GetString()!;
            StringAssert.EndsWith(answer, "\n#### " + problems[i].Answer);
            // One line per step, each "a op b=<<a op b=c>>c".
            var stepLines = answer.Split('\n')[..^1];
            Assert.HasCount(problems[i].Steps.Count, stepLines);
            for (int k = 0; k < stepLines.Length; k++)
            {
                var m = Regex.Match(stepLines[k], @"^(\d+[+\-*]\d+)=<<(\d+[+\-*]\d+)=(\d+)>>(\d+)$");
                Assert.IsTrue(m.Success, stepLines[k]);
                Assert.AreEqual(m.Groups[1].Value, m.Groups[2].Value);
                Assert.AreEqual(m.Groups[3].Value, m.Groups[4].Value);
                Assert.AreEqual(problems[i].Steps[k], m.Groups[2].Value + "=" + m.Groups[3].Value + ".");
            }
        }

        // The file overload writes the same bytes, without a BOM.
        string path = Path.Combine(Path.GetTempPath(), $"arith-{Guid.NewGuid():N}.jsonl");
        try
        {
            ArithmeticTask.WriteGsm8kJsonl(problems, path);
            var bytes = File.ReadAllBytes(path);
            Assert.AreNotEqual((byte)0xEF, bytes[0]);
            Assert.AreEqual(writer.ToString(), File.ReadAllText(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void BadOptionsAreRejectedClearly()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ArithmeticTask.Generate(new ArithmeticTaskOptions { MinSteps = 0 }, 1, 0, TaskSplit.Train));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ArithmeticTask.Generate(new ArithmeticTaskOptions { MinSteps = 3, MaxSteps = 2 }, 1, 0, TaskSplit.Train));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ArithmeticTask.Generate(new ArithmeticTaskOptions { Operations = ArithmeticOperations.None }, 1, 0, TaskSplit.Train));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ArithmeticTask.Generate(new ArithmeticTaskOptions { HeldOutFraction = 1 }, 1, 0, TaskSplit.Train));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ArithmeticTask.Generate(ArithmeticTaskOptions.Default, -1, 0, TaskSplit.Train));
        Assert.ThrowsExactly<ArgumentNullException>(() => ArithmeticTask.Generate(null!, 1, 0, TaskSplit.Train));
        // One computation times 8 names, 8 objects and 3 wordings cannot give 1000 distinct problems.
        var tiny = new ArithmeticTaskOptions { MinSteps = 1, MaxSteps = 1, MaxStartValue = 2, MaxAddend = 1, MaxValue = 3, Operations = ArithmeticOperations.Add };
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => ArithmeticTask.Generate(tiny, 1000, 0, TaskSplit.Train));
        StringAssert.Contains(ex.Message, "distinct");
        Assert.IsEmpty(ArithmeticTask.Generate(ArithmeticTaskOptions.Default, 0, 0, TaskSplit.Train));
    }

    private static ArithmeticTaskOptions Preset(string name) => name switch
    {
        "Easy" => ArithmeticTaskOptions.Easy,
        "Hard" => ArithmeticTaskOptions.Hard,
        _ => ArithmeticTaskOptions.Default,
    };

    /// <summary>Reads the question sentence by sentence, independently of the generator's templates.</summary>
    private static int SolveQuestion(string question)
    {
        var sentences = Regex.Split(question, @"(?<=[.?]) ");
        int x = int.Parse(Regex.Match(sentences[0], @"^\w+ has (\d+) \w+\.$").Groups[1].Value);
        foreach (var s in sentences[1..^1])
        {
            Match m;
            if ((m = Regex.Match(s, @"^\w+ (?:gets|buys|finds) (\d+) more\.$")).Success)
                x += int.Parse(m.Groups[1].Value);
            else if ((m = Regex.Match(s, @"^\w+ (?:gives away|loses|sells) (\d+)\.$")).Success)
                x -= int.Parse(m.Groups[1].Value);
            else if ((m = Regex.Match(s, @"^\w+ (?:buys|gets) (\d+) (?:boxes|bags) of (\d+)\.$")).Success)
                x += int.Parse(m.Groups[1].Value) * int.Parse(m.Groups[2].Value);
            else if ((m = Regex.Match(s, @"^\w+ gives (\d+) friends (\d+) each\.$")).Success)
                x -= int.Parse(m.Groups[1].Value) * int.Parse(m.Groups[2].Value);
            else if ((m = Regex.Match(s, @"^\w+ now has (\d+) times as many\.$")).Success)
                x *= int.Parse(m.Groups[1].Value);
            else
                Assert.Fail($"Unrecognized sentence '{s}' in '{question}'.");
        }

        StringAssert.Matches(sentences[^1], new Regex(@"^How many \w+ now\?$"));
        return x;
    }
}
