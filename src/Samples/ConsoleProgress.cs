using System.Diagnostics;
using System.Globalization;
using Spectre.Console;

namespace StepDpo.Samples;

/// <summary>
/// Progress of a long stage. On a terminal: a live Spectre.Console bar. When output is redirected (a log file, a pipe,
/// CI): plain lines instead, because a live bar written to a file repeats its line at every refresh; one line when the
/// stage starts, one each time another tenth of the work is done, and the caller's own summary at the end.
/// </summary>
internal static class ConsoleProgress
{
    /// <summary>
    /// Called once at startup. When output is redirected: no ANSI escape codes, and lines and tables as wide as they
    /// need to be (Spectre.Console would otherwise wrap at 80 columns).
    /// </summary>
    public static void ConfigureConsole()
    {
        if (!Console.IsOutputRedirected) return;
        AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(Console.Out),
        });
        AnsiConsole.Profile.Width = 1000;
    }

    /// <summary>Runs <paramref name="work"/>, which reports through the <see cref="ProgressLine"/> it is given.</summary>
    public static T Run<T>(string description, Func<ProgressLine, T> work)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
            return work(ProgressLine.Plain(description));
        return AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(description), maxValue: 1);
                var result = work(ProgressLine.Live(task));
                task.Value = task.MaxValue;
                return result;
            });
    }

    /// <summary>The asynchronous <see cref="Run"/>.</summary>
    public static async Task<T> RunAsync<T>(string description, Func<ProgressLine, Task<T>> work)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
            return await work(ProgressLine.Plain(description));
        return await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(description), maxValue: 1);
                var result = await work(ProgressLine.Live(task));
                task.Value = task.MaxValue;
                return result;
            });
    }
}

/// <summary>Where a stage reports how far it is; safe to call from any thread.</summary>
internal sealed class ProgressLine
{
    private readonly object _lock = new();
    private readonly ProgressTask? _task;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private string _description;
    private int _nextTenth = 1;

    private ProgressLine(ProgressTask? task, string description)
    {
        _task = task;
        _description = description;
    }

    public static ProgressLine Live(ProgressTask task) => new(task, task.Description);

    public static ProgressLine Plain(string description)
    {
        AnsiConsole.WriteLine($"{description} …");
        return new ProgressLine(null, description);
    }

    /// <summary><paramref name="done"/> of <paramref name="total"/>; a new <paramref name="description"/> replaces the stage's.</summary>
    public void Report(double done, double total, string? description = null)
    {
        lock (_lock)
        {
            if (description is not null) _description = description;
            if (_task is not null)
            {
                _task.MaxValue = Math.Max(1, total);
                _task.Value = done;
                if (description is not null) _task.Description = Markup.Escape(description);
                return;
            }
            double fraction = total > 0 ? done / total : 0;
            if (fraction * 10 < _nextTenth) return;
            _nextTenth = (int)Math.Floor(fraction * 10) + 1;
            AnsiConsole.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{_description} ({fraction:P0}, {_clock.Elapsed.TotalSeconds:F0} s)"));
        }
    }
}

/// <summary>IProgress that reports on the calling thread (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
