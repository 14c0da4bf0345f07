using System.Reflection;
using System.Runtime.ExceptionServices;

namespace Microsoft.ML.StepDpo.Data;

/// <summary>
/// The library's own exception under ML.NET's wrappers. ML.NET runs a transform's rows on parallel cursors: an exception
/// thrown while a row is computed (a scorer's base model folder that is gone, a row beyond the context with
/// <c>FailBeyondContext</c>) reaches the reading thread inside ML.NET's InvalidOperationException ("Splitter/consolidator
/// worker encountered exception while consuming source data"), whose message hides the library's. ML.NET throws it from
/// its own cursor and offers no hook to change it, so a model loaded with <c>mlContext.Model.Load</c> and read with your
/// own cursor, <c>CreateEnumerable</c> or <c>GetColumn</c> throws that wrapper; <see cref="Unwrap"/> gives back the
/// library's exception (its message says what is wrong and what to do). A <c>PredictionEngine</c> (it runs on the
/// caller's thread), <c>SaveAsJsonl</c> and <c>SaveAsJsonlPassThrough</c> throw the library's exception itself.
/// </summary>
/// <example>
/// <code>
/// try { foreach (var row in mlContext.Data.CreateEnumerable&lt;Scored&gt;(scored, reuseRowObject: false)) … }
/// catch (Exception e) { Console.Error.WriteLine(WrappedErrors.Unwrap(e).Message); }
/// </code>
/// </example>
public static class WrappedErrors
{
    /// <summary>
    /// The exception under ML.NET's cursor wrappers (and single-exception <see cref="AggregateException"/>s and
    /// <see cref="TargetInvocationException"/>s); <paramref name="exception"/> itself when it is not wrapped.
    /// </summary>
    public static Exception Unwrap(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var e = exception;
        while (e.InnerException is Exception inner && IsWrapper(e))
            e = inner;
        return e;
    }

    /// <summary>Runs <paramref name="body"/>, rethrowing a wrapped exception as the original.</summary>
    internal static T Run<T>(Func<T> body)
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
