using System.Diagnostics;
using System.Reflection;

namespace Microsoft.ML.StepDpo.Tests.Text;

/// <summary>Runs an app built before the tests (the test host, the samples or the tools) in a new process.</summary>
internal static class FreshProcess
{
    /// <summary>How long a started process may run before it counts as hung: a guard, far above any normal run.</summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(10);

    /// <summary>The test host: apply-model and train (test/StepDpo.TestHost).</summary>
    public static string TestHostDll => BuiltApp("TestHostAssembly");

    /// <summary>The samples app (src/Samples).</summary>
    public static string SamplesDll => BuiltApp("SamplesAssembly");

    /// <summary>The research tools (tools/StepDpo.Tools).</summary>
    public static string ToolsDll => BuiltApp("ToolsAssembly");

    private static string BuiltApp(string key) =>
        Path.GetFullPath(typeof(FreshProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!);

    public static (int ExitCode, string Output) RunTestHost(params string[] args) => Run(Start(TestHostDll, args));

    public static (int ExitCode, string Output) RunSamples(params string[] args) => Run(Start(SamplesDll, args));

    public static (int ExitCode, string Output) RunTools(params string[] args) => Run(Start(ToolsDll, args));

    /// <summary>The start info of <c>dotnet <paramref name="dll"/> <paramref name="args"/></c>, output redirected.</summary>
    public static ProcessStartInfo Start(string dll, IEnumerable<string> args)
    {
        Assert.IsTrue(File.Exists(dll), $"app not built at {dll}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    /// <summary>Runs to the end (failing the test if it hangs) and returns the exit code and stdout + stderr.</summary>
    public static (int ExitCode, string Output) Run(ProcessStartInfo psi)
    {
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(HangGuard))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileName(psi.ArgumentList[0])} {string.Join(' ', psi.ArgumentList.Skip(1))} still running after {HangGuard.TotalMinutes} minutes: hung");
        }
        p.WaitForExit(); // the redirected output is complete only now
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
