using Microsoft.ML.StepDpo.Verification;

namespace Microsoft.ML.StepDpo.Tests.Verification;

/// <summary>
/// The arithmetic verifier on plain-text human/LLM-style solutions (no GSM8K annotations): one planted wrong result
/// per solution is found on its line, and correct solutions raise no alarm. The data are generated from a fixed seed,
/// so the rates are the same on every run.
/// </summary>
[TestClass]
public sealed class HumanStyleSolutionTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void PlantedWrongResultsAreFoundAndCorrectSolutionsRaiseNoAlarm()
    {
        var locator = new FirstErrorLocator([new ArithmeticStepVerifier()]);
        var solutions = HumanStyleSolutions.Generate(600, seed: 13);
        int clean = 0, planted = 0, found = 0;
        var alarms = new List<string>();
        var misses = new List<string>();
        var rng = new Random(7);
        foreach (var solution in solutions)
        {
            var lines = solution.Select(l => l.Text).ToArray();
            int at = locator.LocateAsync(new StepVerificationInput("", lines)).Result.FirstErrorStep;
            if (at == -1) clean++;
            else alarms.Add($"{lines[at - 1]}  -->  {new ArithmeticStepVerifier().CheckStep(lines[at - 1]).Evidence}");

            var candidates = Enumerable.Range(0, solution.Length).Where(i => solution[i].Planted is not null).ToList();
            int k = candidates[rng.Next(candidates.Count)];
            var mutated = (string[])lines.Clone();
            mutated[k] = solution[k].Planted!;
            planted++;
            int located = locator.LocateAsync(new StepVerificationInput("", mutated)).Result.FirstErrorStep;
            if (located == k + 1) found++;
            else misses.Add($"{mutated[k]}  (located {located}, planted {k + 1})");
        }

        double detection = (double)found / planted, cleanRate = (double)clean / solutions.Count;
        string report = $"planted line found in {found}/{planted} = {detection:P1}; correct solutions without alarm {clean}/{solutions.Count} = {cleanRate:P1}";
        TestContext.WriteLine(report);
        Assert.IsGreaterThanOrEqualTo(0.995, cleanRate, report + "\nalarms:\n" + string.Join("\n", alarms));
        Assert.IsGreaterThanOrEqualTo(0.97, detection, report + "\nmisses:\n" + string.Join("\n", misses));
    }
}
