namespace Microsoft.ML.StepDpo.Sampling;

/// <summary>
/// A prompt (the problem and the partial solution in the template) does not fit the model's context, so nothing can be
/// generated from it. <see cref="LocalModelCompletionSource"/> fails such a request alone (the other requests of its
/// batch are served); the step-preference pipeline skips and counts a problem that meets it
/// (<see cref="Pipeline.StepPreferenceReport.BeyondContext"/>) unless <see cref="Pipeline.StepPreferenceOptions.FailBeyondContext"/>
/// is set. <see cref="ChatCompletionSource"/> throws it when the server replies that the prompt does not fit the model's
/// context (the reply texts of OpenAI, Azure OpenAI, vLLM, TGI, llama.cpp's server and Ollama are recognised). A
/// completion source of your own may throw it for the same effect.
/// </summary>
public sealed class ContextLengthExceededException : InvalidOperationException
{
    /// <summary>A prompt of <paramref name="promptTokens"/> tokens for a model whose context is <paramref name="contextLength"/>.</summary>
    public ContextLengthExceededException(int promptTokens, int contextLength)
        : this($"A prompt is {promptTokens} tokens; the model's context (max_position_embeddings) is {contextLength}. " +
               "Shorten the problem or use a model with a longer context.", promptTokens, contextLength)
    {
    }

    /// <summary>The same with a message of the caller's.</summary>
    public ContextLengthExceededException(string message, int promptTokens, int contextLength)
        : this(message, promptTokens, contextLength, null)
    {
    }

    /// <summary>
    /// The same with the exception that reported it, such as a server's reply that the prompt is too long (what
    /// <see cref="ChatCompletionSource"/> throws, where a length the reply does not give is 0).
    /// </summary>
    public ContextLengthExceededException(string message, int promptTokens, int contextLength, Exception? innerException)
        : base(message, innerException)
    {
        PromptTokens = promptTokens;
        ContextLength = contextLength;
    }

    /// <summary>The prompt's length in tokens; 0 where it is not known (a server's reply that does not give it).</summary>
    public int PromptTokens { get; }

    /// <summary>
    /// The model's context in tokens (<c>max_position_embeddings</c>): a prompt must be shorter to leave room for one new
    /// token. From a server's reply: the limit it names (vLLM's max_model_len, TGI's max total or input tokens,
    /// llama.cpp's n_ctx); 0 where the reply gives none.
    /// </summary>
    public int ContextLength { get; }
}
