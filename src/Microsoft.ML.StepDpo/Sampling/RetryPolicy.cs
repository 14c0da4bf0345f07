using System.Net;

namespace Microsoft.ML.StepDpo.Sampling;

/// <summary>
/// Retries with exponential backoff and jitter on transient errors of a remote service: connection failures,
/// timeouts, HTTP 408, 429 and 5xx (from <see cref="HttpRequestException"/> or any exception with an integer
/// <c>Status</c> property, such as the OpenAI client's). Other errors, and cancellation by the caller, are not retried.
/// </summary>
public sealed class RetryPolicy
{
    /// <summary>Attempts in all, the first included. Default 5.</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>Delay before the first retry; doubled (see <see cref="BackoffFactor"/>) each time. Default 1 s.</summary>
    public TimeSpan InitialDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest delay between attempts. Default 30 s.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Growth of the delay per retry. Default 2.</summary>
    public double BackoffFactor { get; init; } = 2.0;

    /// <summary>No retries.</summary>
    public static RetryPolicy None { get; } = new() { MaxAttempts = 1 };

    /// <summary>Runs <paramref name="operation"/>, retrying transient failures.</summary>
    internal async Task<T> ExecuteAsync<T>(Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken)
    {
        if (MaxAttempts < 1) throw new InvalidOperationException("RetryPolicy.MaxAttempts must be at least 1.");
        var delay = InitialDelay;
        for (int attempt = 1; ; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                return await operation(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (attempt < MaxAttempts && IsTransient(e, cancellationToken))
            {
                // Full jitter keeps many concurrent callers from retrying in lock step.
                var wait = TimeSpan.FromTicks((long)(delay.Ticks * (0.5 + 0.5 * Random.Shared.NextDouble())));
                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(MaxDelay.Ticks, (long)(delay.Ticks * BackoffFactor)));
            }
        }
    }

    /// <summary>Whether <paramref name="e"/> is worth retrying.</summary>
    internal static bool IsTransient(Exception e, CancellationToken cancellationToken)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            switch (x)
            {
                case ContextLengthExceededException:
                    return false; // the same prompt never fits
                case OperationCanceledException:
                    // The caller's cancellation is final; any other (an HTTP client timeout) is transient.
                    return !cancellationToken.IsCancellationRequested;
                case TimeoutException or IOException:
                    return true;
                case HttpRequestException http:
                    return http.StatusCode is null || IsTransientStatus((int)http.StatusCode.Value);
            }
            if (x.GetType().GetProperty("Status")?.GetValue(x) is int status && status > 0)
                return IsTransientStatus(status);
        }
        return false;
    }

    private static bool IsTransientStatus(int status) =>
        status is (int)HttpStatusCode.RequestTimeout or (int)HttpStatusCode.TooManyRequests or >= 500 and <= 599;
}
