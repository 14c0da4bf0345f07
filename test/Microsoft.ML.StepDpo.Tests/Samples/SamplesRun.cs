using System.Diagnostics;
using Microsoft.ML.StepDpo.Tests.Text;

namespace Microsoft.ML.StepDpo.Tests.Samples;

/// <summary>One run of the samples app in a fresh process, with stdout and stderr apart.</summary>
internal sealed record SamplesRun(int ExitCode, string Stdout, string Stderr)
{
    public static SamplesRun Of(params string[] args)
    {
        using var p = Process.Start(FreshProcess.Start(FreshProcess.SamplesDll, args))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(FreshProcess.HangGuard))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"samples {string.Join(' ', args)} hung");
        }
        p.WaitForExit();
        return new SamplesRun(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>The lines on stderr that are not warnings.</summary>
    public IReadOnlyList<string> ErrorLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Where(l => !l.StartsWith("warning:", StringComparison.Ordinal)).ToList();

    /// <summary>Asserts the run failed with <paramref name="exitCode"/>, one "error: …" line holding every fragment, and no stack trace.</summary>
    public void AssertOneLineError(int exitCode, params string[] fragments)
    {
        string all = $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
        Assert.AreEqual(exitCode, ExitCode, all);
        Assert.AreEqual(1, ErrorLines.Count, all);
        StringAssert.StartsWith(ErrorLines[0], "error: ", all);
        foreach (var f in fragments) StringAssert.Contains(ErrorLines[0], f, all);
        Assert.IsFalse(Stderr.Contains("   at ", StringComparison.Ordinal) || Stdout.Contains("   at ", StringComparison.Ordinal), "a stack trace was printed: " + all);
        Assert.IsFalse((Stdout + Stderr).Contains("Unhandled exception", StringComparison.OrdinalIgnoreCase), all);
    }
}
