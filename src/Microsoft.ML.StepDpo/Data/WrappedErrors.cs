using System.Reflection;
using System.Runtime.ExceptionServices;

namespace Microsoft.ML.StepDpo.Data;

/// <summary>
/// ML.NET's parallel cursors wrap an exception thrown inside a mapping in an InvalidOperationException ("Splitter/consolidator
/// worker encountered exception while consuming source data"), which hides the library's own message. The library's
/// entry points that run cursors rethrow the original exception (with its stack trace) instead.
/// </summary>
internal static class WrappedErrors
{
    /// <summary>The exception a mapping threw, found under ML.NET's cursor wrappers (the exception itself when none).</summary>
    public static Exception Unwrap(Exception e)
    {
        while (e.InnerException is Exception inner && IsWrapper(e))
            e = inner;
        return e;
    }

    /// <summary>Runs <paramref name="body"/>, rethrowing a wrapped exception as the original.</summary>
    public static T Run<T>(Func<T> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (!ReferenceEquals(Unwrap(e), e))
        {
            ExceptionDispatchInfo.Throw(Unwrap(e));
            throw; // not reached
        }
    }

    private static bool IsWrapper(Exception e) =>
        e is TargetInvocationException
        || (e.GetType() == typeof(AggregateException) && ((AggregateException)e).InnerExceptions.Count == 1)
        || (e.GetType() == typeof(InvalidOperationException) && e.Message.StartsWith("Splitter/consolidator worker encountered exception", StringComparison.Ordinal));
}
