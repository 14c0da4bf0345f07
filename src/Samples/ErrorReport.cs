using System.Reflection;
using System.Text.Json;

namespace StepDpo.Samples;

/// <summary>
/// Turns a command's failure into one line on stderr, <c>error: what is wrong, and what to do</c>, and an exit code:
/// 2 for usage errors (bad option values, missing files, output = input), 1 for failures. The full exception with
/// its stack trace is printed only with --verbose.
/// </summary>
internal static class ErrorReport
{
    /// <summary>Exit code of a command line that cannot work as given.</summary>
    public const int UsageExitCode = 2;

    /// <summary>Exit code of a command that started and failed.</summary>
    public const int FailureExitCode = 1;

    /// <summary>Prints the one-line report of <paramref name="error"/> (and its stack when verbose); returns the exit code.</summary>
    public static int Report(Exception error, bool verbose)
    {
        var cause = Cause(error);
        Console.Error.WriteLine("error: " + OneLine(Message(cause)));
        if (verbose) Console.Error.WriteLine(error.ToString());
        return IsUsage(cause) ? UsageExitCode : FailureExitCode;
    }

    /// <summary>Prints a usage error found before the command ran; returns <see cref="UsageExitCode"/>.</summary>
    public static int ReportUsage(string message)
    {
        Console.Error.WriteLine("error: " + OneLine(message));
        return UsageExitCode;
    }

    private static bool IsUsage(Exception e) => e is UsageException or FileNotFoundException or DirectoryNotFoundException or ArgumentException;

    /// <summary>
    /// The exception that says what went wrong: ML.NET, tasks and reflection wrap the library's exceptions (e.g.
    /// "Splitter/consolidator worker encountered exception"), so the first exception in the chain thrown by this
    /// app or the Step-DPO library wins, else the innermost one.
    /// </summary>
    private static Exception Cause(Exception error)
    {
        var chain = new List<Exception>();
        for (var e = error; e is not null && chain.Count < 32; e = e is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerException : e.InnerException)
            chain.Add(e);
        var ours = new[] { typeof(ErrorReport).Assembly, typeof(Microsoft.ML.StepDpo.Data.JsonlDataView).Assembly };
        return chain.FirstOrDefault(e => e is UsageException || (e is not (TargetInvocationException or AggregateException)
                   && e.TargetSite?.DeclaringType?.Assembly is { } asm && ours.Contains(asm)))
               ?? chain[^1];
    }

    private static string Message(Exception e) => e switch
    {
        FileNotFoundException f when f.FileName is { } name && !f.Message.Contains(name, StringComparison.Ordinal) => $"{name}: file not found; check the path.",
        UnauthorizedAccessException => e.Message + " Check the path and its permissions (a folder where a file is expected?).",
        JsonException j when j.LineNumber is { } line => $"line {line + 1}: invalid JSON ({j.Message})",
        _ => e.Message,
    };

    private static string OneLine(string message) => string.Join(' ', message.Split(new[] { '\r', '\n' }, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
