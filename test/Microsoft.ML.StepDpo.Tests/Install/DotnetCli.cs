using System.Diagnostics;
using System.Text;

namespace Microsoft.ML.StepDpo.Tests.Install;

/// <summary>
/// Runs the dotnet CLI as a user would, in a child process: without the MSBuild settings that <c>dotnet test</c>
/// passes to its children, without build servers or reused nodes (nothing outlives the command), and with a
/// generous time limit that only guards against a hang.
/// </summary>
internal static class DotnetCli
{
    private static readonly TimeSpan s_hangGuard = TimeSpan.FromMinutes(10);

    /// <summary>Runs <c>dotnet args…</c> in <paramref name="workingDirectory"/>; fails the test on a non-zero exit.</summary>
    public static string Run(string workingDirectory, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(key);
        psi.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        psi.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) psi.Environment[key] = value;

        string command = "dotnet " + string.Join(' ', psi.ArgumentList);
        var output = new StringBuilder();
        using var process = new Process { StartInfo = psi };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(s_hangGuard))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"'{command}' did not finish within {s_hangGuard.TotalMinutes} minutes (hang guard):\n{output}");
        }
        process.WaitForExit(); // drains the asynchronous readers
        string text;
        lock (output) text = output.ToString();
        Assert.AreEqual(0, process.ExitCode, $"'{command}' in {workingDirectory} failed:\n{text}");
        return text;
    }
}
