using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.StepDpo.Verification;

namespace Microsoft.ML.StepDpo.Tests.Verification;

[TestClass]
public sealed class ArithmeticStepVerifierTests
{
    private static readonly ArithmeticStepVerifier s_verifier = new();

    [TestMethod]
    public void NoAlarmOnCorrectHumanSteps()
    {
        var steps = HumanSolutions.AllCorrectSteps().ToList();
        Assert.IsGreaterThanOrEqualTo(200, steps.Count);
        var alarms = steps.Select(s => (s, c: s_verifier.CheckStep(s))).Where(x => x.c.Verdict == StepVerdict.Incorrect)
            .Select(x => $"{x.s}  -->  {x.c.Evidence}").ToList();
        Assert.IsEmpty(alarms, string.Join("\n", alarms));
        // And it does read most of them: the checks are not vacuous.
        int checkedSteps = steps.Count(s => s_verifier.CheckStep(s).Evidence.StartsWith("calculations hold", StringComparison.Ordinal));
        Assert.IsGreaterThan(steps.Count * 0.7, checkedSteps, $"{checkedSteps} of {steps.Count} steps had a checked calculation");
    }

    [TestMethod]
    [DataRow("16 - 3 - 4 = 10")]
    [DataRow("She sells 16 - 3 - 4 = <<16-3-4=10>>10 duck eggs.")]
    [DataRow("She sells 16 - 3 - 4 = <<16-3-4=9>>10 duck eggs.")]
    [DataRow("9 * 2 = $19")]
    [DataRow("80,000*1.5=125,000")]
    [DataRow("$3 \\times 4 = 13$")]
    [DataRow("That is $5 \\cdot 6 = 35$.")]
    [DataRow("We get \\frac{120}{4} = 40 pages per day.")]
    [DataRow("20% of 50 = 12")]
    [DataRow("50*20% = 12")]
    [DataRow("12 * 1.5 = 18 = 19")]
    [DataRow("20 * 5 = 110 - 20 = 90")]
    [DataRow("20 * 5 = 100 - 20 = 70")]
    [DataRow("(12 + 8) * 3 = 50")]
    [DataRow("2^3 + 1 = 10")]
    [DataRow("10/3 = 3.5")]
    [DataRow("10/3 = 3.2")]
    [DataRow("10/3 ≈ 5")]
    [DataRow("2 hours * 60 = 100 minutes")]
    [DataRow("$5.50 x 4 = $23")]
    [DataRow("1/2 * 10 = 6")]
    [DataRow("3 + 4 = 8 apples")]
    [DataRow("The change is -5 + 3 = 2 degrees.")]
    [DataRow("He saves $50/month * 12 months = $500")]
    [DataRow("45.60 * 0.15 = $6.94")]
    [DataRow("12+54=68.")]
    [DataRow("8/10 = 70 percent")]
    [DataRow("5/20 = 0.25 = 20%")]
    [DataRow("30 * 4 = 120 / 60 = 3 hours")]
    [DataRow("So she has 48 - (12 + 6) = 36 left.")]
    [DataRow("5 pizzas x 12 slices per pizza = 70 slices")]
    [DataRow("45 hours/week x 4 weeks = 179 hours")]
    [DataRow("$10 total / 5 packs of bacon = $12")]
    [DataRow("10 plus 9 plus 1 equals 21")]
    [DataRow("140cm full length – 20cm lace trim = 125cm")]
    [DataRow("That's 12 — 5 = 8 left")]
    [DataRow("- Cookies: 3 × 12 = 38")]
    [DataRow("**Step 2:** 12 + 15 = 28")]
    [DataRow("10 / 3 = about 3.40 liters each")]
    [DataRow("1000 / 3 = roughly 500")]
    [DataRow("97/6 ≈ 16.9")]
    [DataRow("5 apples minus 2 apples is 4 apples.")]
    [DataRow("12 divided by 4 equals 4")]
    [DataRow("6 multiplied by 7 is equal to 43")]
    [DataRow("40% of the 260 students = 105 students")]
    [DataRow("He earns $15 an hour x 40 hours a week = $650 a week")]
    [DataRow("4 × 5 gives 21 cookies.")]
    [DataRow("That is 6 x 7, which is 48.")]
    public void PlantedWrongResultIsFlagged(string step)
    {
        var check = s_verifier.CheckStep(step);
        Assert.AreEqual(StepVerdict.Incorrect, check.Verdict, check.Evidence);
        StringAssert.Contains(check.Evidence, "but");
    }

    [TestMethod]
    public void EvidenceSaysWhatTheResultShouldBe()
    {
        var check = s_verifier.CheckStep("Step 2: 12+54=68.");
        Assert.AreEqual(StepVerdict.Incorrect, check.Verdict);
        Assert.AreEqual("12+54=68, but 12+54 is 66", check.Evidence);
        Assert.AreEqual(StepVerdict.Incorrect, s_verifier.CheckStep("<<48/2=25>>25 clips").Verdict);
        StringAssert.Contains(s_verifier.CheckStep("sold 48/2 = <<48/2=24>>25 clips").Evidence, "48/2 is 24");
    }

    [TestMethod]
    public void StepsWithoutCalculationsAreUnknownAndCheckedOnesCanBeConfirmed()
    {
        Assert.AreEqual(StepCheck.Unknown, s_verifier.CheckStep("Let x be the number of apples."));
        var unknown = s_verifier.CheckStep("6*9=54.");
        Assert.AreEqual(StepVerdict.Unknown, unknown.Verdict);
        Assert.AreEqual("calculations hold: 6*9=54", unknown.Evidence);
        Assert.AreEqual(StepVerdict.Correct, new ArithmeticStepVerifier(confirmsCorrectCalculations: true).CheckStep("6*9=54.").Verdict);
        Assert.AreEqual(StepVerdict.Unknown, new ArithmeticStepVerifier(confirmsCorrectCalculations: true).CheckStep("He has 5 apples.").Verdict);
    }

    [TestMethod]
    public void PlantedResultInHumanSolutionsIsFoundOnTheRightLine()
    {
        var locator = new FirstErrorLocator([s_verifier]);
        var annotation = new Regex(@"<<([^<>]*)=([^<>=]*)>>(\d[\d,]*(?:\.\d+)?)");
        int planted = 0, found = 0;
        var misses = new List<string>();
        foreach (var solution in HumanSolutions.Gsm8kStyle)
        {
            var lines = solution.Split('\n');
            // Correct solutions: no error anywhere, annotated or not.
            Assert.AreEqual(-1, locator.LocateAsync(new StepVerificationInput("", lines)).Result.FirstErrorStep, solution);
            Assert.AreEqual(-1, locator.LocateAsync(new StepVerificationInput("", lines.Select(HumanSolutions.StripAnnotations).ToArray())).Result.FirstErrorStep, solution);

            for (int k = 0; k < lines.Length; k++)
            {
                var m = annotation.Match(lines[k]);
                if (!m.Success)
                    continue;
                string wrong = Mutate(m.Groups[3].Value);
                // The author computed wrongly: the annotation and the visible result both carry the wrong number.
                string both = lines[k].Remove(m.Index, m.Length).Insert(m.Index, $"<<{m.Groups[1].Value}={wrong}>>{wrong}");
                // Only the visible number is wrong.
                string visibleOnly = lines[k].Remove(m.Index, m.Length).Insert(m.Index, $"<<{m.Groups[1].Value}={m.Groups[2].Value}>>{wrong}");
                foreach (var variant in new[] { both, visibleOnly, HumanSolutions.StripAnnotations(both) })
                {
                    var mutated = (string[])lines.Clone();
                    mutated[k] = variant;
                    if (variant != both && variant == HumanSolutions.StripAnnotations(both) && !lines[k].Contains("= <<") && !lines[k].Contains("=<<") && !lines[k].Contains("$<<"))
                        continue; // the stripped text does not state this calculation ("4 * 20 sheep = <<...>>80" keeps it; "costs <<..>>" would not)
                    planted++;
                    int at = locator.LocateAsync(new StepVerificationInput("", mutated)).Result.FirstErrorStep;
                    if (at == k + 1)
                        found++;
                    else
                        misses.Add($"{variant} (located {at}, planted {k + 1})");
                }
            }
        }

        Assert.IsGreaterThan(250, planted);
        Assert.IsGreaterThanOrEqualTo(0.95, (double)found / planted, $"{found}/{planted}; misses:\n{string.Join("\n", misses)}");
        Assert.IsEmpty(misses, string.Join("\n", misses));
    }

    [TestMethod]
    public void RoundingTheTextShowsIsToleratedButNotMore()
    {
        // 10/3 = 3.333…: rounded, truncated or rounded up at the shown precision.
        foreach (var ok in new[] { "10/3 = 3.33", "10/3 = 3.34", "10/3 = 3.3", "10/3 = 3", "10/3 ≈ 3.3", "20/3 = 6.67", "20/3 = 7", "1/8 = 0.125", "1/8 = 0.13", "100/7 = 14.29" })
            Assert.AreNotEqual(StepVerdict.Incorrect, s_verifier.CheckStep(ok).Verdict, ok);
        foreach (var bad in new[] { "10/3 = 3.35", "10/3 = 3.2", "10/3 = 4.5", "20/3 = 6.5", "1/8 = 0.3", "100/7 = 14.5", "12/4 = 3.5", "12/4 = 4" })
            Assert.AreEqual(StepVerdict.Incorrect, s_verifier.CheckStep(bad).Verdict, bad);
    }

    [TestMethod]
    public void VerifyAsyncReturnsOneCheckPerStep()
    {
        var input = new StepVerificationInput("Mia has 12 books.", ["6*9=54.", "12+54=68.", "68+24=92."], "90");
        var checks = s_verifier.VerifyAsync(input).Result;
        Assert.HasCount(3, checks);
        CollectionAssert.AreEqual(new[] { StepVerdict.Unknown, StepVerdict.Incorrect, StepVerdict.Unknown }, checks.Select(c => c.Verdict).ToArray());
        Assert.ThrowsExactly<ArgumentNullException>(() => s_verifier.VerifyAsync(null!));
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsExactly<OperationCanceledException>(() => s_verifier.VerifyAsync(input, cts.Token));
    }

    internal static string Mutate(string number)
    {
        // A different result that no rounding explains: +1 on integers, +7 units of the last decimal otherwise.
        string plain = number.Replace(",", string.Empty);
        int dot = plain.IndexOf('.');
        if (dot < 0)
            return (long.Parse(plain, CultureInfo.InvariantCulture) + 1).ToString(CultureInfo.InvariantCulture);
        int decimals = plain.Length - dot - 1;
        double v = double.Parse(plain, CultureInfo.InvariantCulture) + 7 * Math.Pow(10, -decimals);
        return v.ToString("F" + decimals, CultureInfo.InvariantCulture);
    }
}
