using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.ML.StepDpo.Data;

namespace Microsoft.ML.StepDpo.Tasks;

/// <summary>
/// The built-in task: seeded multi-step arithmetic word problems with gold step-by-step solutions in
/// the Step-DPO format, e.g.
/// <code>
/// Mia has 12 books. Mia buys 6 boxes of 9. Mia gets 24 more. How many books now?
///
/// Let's think step by step.
/// Step 1: 6*9=54.
/// Step 2: 12+54=66.
/// Step 3: 66+24=90.
/// The answer is 90.
/// </code>
/// Every step is one binary operation written in full, so one wrong step ruins the answer.
/// </summary>
public static class ArithmeticTask
{
    private static readonly Lazy<IReadOnlyList<char>> s_alphabet = new(ArithmeticTemplates.ComputeAlphabet);

    /// <summary>
    /// Every character a question or a gold solution can contain (sorted, includes ' ' and '\n'),
    /// whatever the options: build a character-level tokenizer from it. Prompt templates wrapped
    /// around the problem may need more characters.
    /// </summary>
    public static IReadOnlyList<char> Alphabet => s_alphabet.Value;

    /// <summary>The first line of every gold solution: "Let's think step by step.".</summary>
    public static string SolutionHeader => ArithmeticTemplates.SolutionHeader;

    /// <summary>
    /// Generates <paramref name="count"/> distinct problems of one split. The same options, count, seed
    /// and split always give the same problems. Train and held-out problems never coincide, for any seeds:
    /// the split is a fixed partition by a stable hash of each problem's chain of calculations.
    /// </summary>
    /// <param name="options">Difficulty; see the presets on <see cref="ArithmeticTaskOptions"/>.</param>
    /// <param name="count">Number of problems (≥ 0).</param>
    /// <param name="seed">Random seed.</param>
    /// <param name="split">Which side of the partition to draw from.</param>
    /// <exception cref="InvalidOperationException">The options allow fewer distinct problems than requested.</exception>
    public static IReadOnlyList<ArithmeticProblem> Generate(ArithmeticTaskOptions options, int count, int seed, TaskSplit split)
    {
        if (options is null)
            throw new ArgumentNullException(nameof(options));
        if (count < 0)
            throw new ArgumentOutOfRangeException(nameof(count), count, "count must not be negative.");
        if (split is not (TaskSplit.Train or TaskSplit.HeldOut))
            throw new ArgumentOutOfRangeException(nameof(split), split, "Unknown split.");
        options.Validate();

        var rng = new Random(seed);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var result = new List<ArithmeticProblem>(count);
        long maxAttempts = 10_000 + 500L * count;
        for (long attempt = 0; result.Count < count; attempt++)
        {
            if (attempt >= maxAttempts)
            {
                throw new InvalidOperationException(
                    $"Found only {result.Count} distinct {split} problems of the {count} requested after {attempt} draws; " +
                    "these options allow too few problems (widen the number ranges or the step counts, or ask for fewer).");
            }

            var draft = ArithmeticProblemGenerator.TryDraw(rng, options);
            if (draft is null || IsHeldOut(draft.Identity, options.HeldOutFraction) != (split == TaskSplit.HeldOut))
                continue;
            if (seen.Add(draft.Problem.Question))
                result.Add(draft.Problem);
        }

        return result;
    }

    /// <summary>
    /// Writes a solution in the Step-DPO format from step bodies ("6*9=54.") and the answer:
    /// "Let's think step by step.\nStep 1: 6*9=54.\n…\nThe answer is 90.".
    /// </summary>
    public static string FormatSolution(IReadOnlyList<string> steps, int answer)
    {
        if (steps is null)
            throw new ArgumentNullException(nameof(steps));
        var sb = new StringBuilder(ArithmeticTemplates.SolutionHeader);
        for (int i = 0; i < steps.Count; i++)
            sb.Append("\nStep ").Append((i + 1).ToString(CultureInfo.InvariantCulture)).Append(": ").Append(steps[i]);
        sb.Append('\n').Append(ArithmeticTemplates.AnswerPrefix).Append(answer.ToString(CultureInfo.InvariantCulture)).Append('.');
        return sb.ToString();
    }

    /// <summary>
    /// The gold solution as a GSM8K answer: one line per step with a calculator annotation
    /// ("6*9=&lt;&lt;6*9=54&gt;&gt;54"), then "#### 90".
    /// </summary>
    public static string ToGsm8kAnswer(ArithmeticProblem problem)
    {
        if (problem is null)
            throw new ArgumentNullException(nameof(problem));
        var sb = new StringBuilder();
        foreach (var step in problem.Steps)
        {
            // "6*9=54." -> "6*9=<<6*9=54>>54"
            string body = step.TrimEnd('.');
            int eq = body.IndexOf('=');
            sb.Append(body, 0, eq + 1).Append("<<").Append(body).Append(">>").Append(body, eq + 1, body.Length - eq - 1).Append('\n');
        }

        sb.Append("#### ").Append(problem.Answer.ToString(CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    /// <summary>Writes problems as GSM8K-style JSON lines: <c>{"question": "…", "answer": "…\n#### 90"}</c>.</summary>
    public static void WriteGsm8kJsonl(IEnumerable<ArithmeticProblem> problems, TextWriter writer)
    {
        if (problems is null)
            throw new ArgumentNullException(nameof(problems));
        if (writer is null)
            throw new ArgumentNullException(nameof(writer));
        var jsonOptions = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        using var buffer = new MemoryStream();
        foreach (var p in problems)
        {
            buffer.SetLength(0);
            using (var json = new Utf8JsonWriter(buffer, jsonOptions))
            {
                json.WriteStartObject();
                json.WriteString("question", p.Question);
                json.WriteString("answer", ToGsm8kAnswer(p));
                json.WriteEndObject();
            }

            writer.Write(Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
            writer.Write('\n');
        }
    }

    /// <summary>Writes problems as a GSM8K-style JSONL file (UTF-8, no BOM).</summary>
    public static void WriteGsm8kJsonl(IEnumerable<ArithmeticProblem> problems, string path)
    {
        using var writer = new StreamWriter(path, append: false, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
        WriteGsm8kJsonl(problems, writer);
    }

    /// <summary>The fixed partition: a problem is held out when the stable hash of its computation falls in the held-out share.</summary>
    internal static bool IsHeldOut(string identity, double heldOutFraction) =>
        StableHash.Fnv1a64("split:" + identity) % 1_000_000UL < (ulong)(heldOutFraction * 1_000_000);
}
