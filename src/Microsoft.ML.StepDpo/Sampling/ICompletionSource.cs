namespace Microsoft.ML.StepDpo.Sampling;

/// <summary>
/// Something that continues a partial step-by-step solution: the local TorchSharp model
/// (<see cref="LocalModelCompletionSource"/>) or any <c>Microsoft.Extensions.AI</c> chat client
/// (<see cref="ChatCompletionSource"/>). Used for error collection, rollouts and rectification.
/// </summary>
public interface ICompletionSource
{
    /// <summary>
    /// Samples <see cref="CompletionRequest.Count"/> continuations of <see cref="CompletionRequest.Prefix"/>
    /// for <see cref="CompletionRequest.Problem"/>. Each result is the continuation only (it does not repeat the prefix),
    /// so <c>Prefix + result</c> is a whole solution. Transient failures are retried by the implementation;
    /// what still fails is thrown.
    /// </summary>
    Task<IReadOnlyList<string>> CompleteAsync(CompletionRequest request, CancellationToken cancellationToken = default);
}
