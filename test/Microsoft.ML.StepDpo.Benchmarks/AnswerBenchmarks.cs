using BenchmarkDotNet.Attributes;
using Microsoft.ML.StepDpo.Answers;

namespace Microsoft.ML.StepDpo.Benchmarks;

/// <summary>
/// Extraction + equivalence of answer pairs in the shapes models produce (a solution's last lines and a
/// reference answer). One operation = the whole set of pairs; pairs/s = Pairs / mean time.
/// </summary>
[MemoryDiagnoser]
[MinColumn, MedianColumn]
public class AnswerBenchmarks
{
    private static readonly (string Response, string Reference)[] s_templates =
    {
        ("Step 3: 48 + 24 = 72.\nThe answer is: 72", "72"),
        ("Step 2: So the probability is $\\frac{3}{6} = \\frac{1}{2}$.\nThe answer is: \\frac{1}{2}", "0.5"),
        ("Therefore the final answer is $\\boxed{\\dfrac{\\sqrt{3}}{2}}$.", "\\frac{\\sqrt{3}}{2}"),
        ("The roots are $\\boxed{(1, -2)}$.", "(1,-2)"),
        ("So $x = \\boxed{10{,}000}$ dollars.", "10000"),
        ("The interval is $\\boxed{[2, 5)}$.", "[2,5)"),
        ("Hence $\\boxed{2\\pi}$.", "6.2832"),
        ("We expand: $\\boxed{x^2+2x+1}$.", "(x+1)^2"),
        ("The matrix is $\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}$.", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
        ("She earns 1,250 dollars in total, so 1250 - 250 = 1000", "1000"),
        ("The answer is $50\\%$", "0.5"),
        ("The answer is: 15 \\text{ cm}", "14"),
    };

    private (string Response, string Reference)[] _pairs = Array.Empty<(string, string)>();

    [Params(1200)]
    public int Pairs { get; set; }

    [GlobalSetup]
    public void Setup() =>
        _pairs = Enumerable.Range(0, Pairs).Select(i => s_templates[i % s_templates.Length]).ToArray();

    [Benchmark(Baseline = true, Description = "ExtractAndCompare (plain unit loop)")]
    public int ExtractAndComparePlain()
    {
        int correct = 0;
        foreach (var (response, reference) in _pairs)
            if (AnswerEquivalence.IsCorrect(response, reference, plainUnits: true)) correct++;
        return correct;
    }

    [Benchmark]
    public int ExtractAndCompare()
    {
        int correct = 0;
        foreach (var (response, reference) in _pairs)
            if (AnswerEquivalence.IsCorrect(response, reference)) correct++;
        return correct;
    }

    [Benchmark]
    public int ExtractOnly()
    {
        int n = 0;
        foreach (var (response, _) in _pairs) n += AnswerExtractor.Extract(response).Length;
        return n;
    }
}
