using System.Text.RegularExpressions;
using Microsoft.ML.StepDpo.Tests.Text;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

[TestClass]
public sealed partial class NativeHeapTests
{
    [GeneratedRegex(@"retaining=(\w+) faults=([\d,]+)")]
    private static partial Regex Report();

    private static (bool Retaining, long[] Faults) Check(params string[] args)
    {
        var (code, output) = FreshProcess.RunTools(["native-heap-check", .. args]);
        Assert.AreEqual(0, code, output);
        var m = Report().Match(output);
        Assert.IsTrue(m.Success, output);
        return (bool.Parse(m.Groups[1].Value), m.Groups[2].Value.Split(',').Select(long.Parse).ToArray());
    }

    [TestMethod]
    public void RetainedHeapStopsTrainingStepsFromFaultingTheirMemoryInAgain()
    {
        if (!OperatingSystem.IsLinux()) Assert.Inconclusive("glibc-specific behaviour.");
        // Eight steps of a model whose step allocates and frees 32 MiB blocks (logits over 16,384 words). By default
        // glibc maps each such block afresh and every step faults ~35,000 pages in again; retained, the heap settles
        // within a few steps (when exactly varies from run to run) and the last steps reuse it.
        var plain = Check();
        Assert.IsFalse(plain.Retaining);
        long plainLeast = plain.Faults[3..].Min();
        Assert.IsGreaterThan(20_000L, plainLeast, $"default glibc: steps 4-8 fault {string.Join(", ", plain.Faults)}");

        var retained = Check("--retain");
        Assert.IsTrue(retained.Retaining, "this Linux host's C library is glibc");
        Assert.IsTrue(retained.Faults[^2..].All(f => f < plainLeast / 10),
            $"retained: steps 7-8 fault {string.Join(", ", retained.Faults)}; default: {string.Join(", ", plain.Faults)}");
    }
}
