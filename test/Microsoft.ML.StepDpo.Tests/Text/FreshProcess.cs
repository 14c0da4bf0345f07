using System.Diagnostics;
using System.Reflection;

namespace Microsoft.ML.StepDpo.Tests.Text;

/// <summary>Runs the samples app (built before the tests) in a new process.</summary>
internal static class FreshProcess
{
    public static string SamplesDll =>
        Path.GetFullPath(typeof(FreshProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "SamplesAssembly").Value!);

    public static (int ExitCode, string Output) RunSamples(params string[] args)
    {
        Assert.IsTrue(File.Exists(SamplesDll), $"Samples app not built at {SamplesDll}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(SamplesDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("samples app timed out");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
