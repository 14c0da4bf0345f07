namespace Microsoft.ML.StepDpo.Sampling;

/// <summary>Options of <see cref="ChatCompletionSource"/>.</summary>
public sealed class ChatCompletionSourceOptions
{
    /// <summary>Model name sent with each request (needed by most OpenAI-protocol servers). Default null (the client's default).</summary>
    public string? ModelId { get; set; }

    /// <summary>Requests in flight at once, over all calls of this source. Default 8.</summary>
    public int MaxParallelRequests { get; set; } = 8;

    /// <summary>Retries of transient failures. Default <see cref="RetryPolicy"/>'s defaults (5 attempts, 1 s doubling to 30 s).</summary>
    public RetryPolicy Retry { get; set; } = new();

    /// <summary>The system message. Default: solve step by step, one "Step k:" per step, end with "The answer is …".</summary>
    public string SystemPrompt { get; set; } =
        "You solve math problems step by step. Write each step on its own line as \"Step k: ...\" (k = 1, 2, ...), " +
        "and end with a last line \"The answer is X.\" where X is the final answer.";
}
