using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.ML.StepDpo.Sampling;

namespace Microsoft.ML.StepDpo.Verification;

/// <summary>
/// Asks a chat model (any <see cref="IChatClient"/>: Azure OpenAI, an OpenAI-protocol server such as vLLM, Ollama)
/// to judge each step against a reference solution, as the Step-DPO authors' data pipeline does with GPT-4o: a short analysis,
/// then a "Final Decision:" block with "Step k: correct | neutral | incorrect", stopping at the first incorrect step.
/// </summary>
/// <remarks>
/// A reply without a readable verdict block, or a request that fails after retries, gives
/// <see cref="StepVerdict.Unknown"/> for every step (with the reason as evidence); it never throws, except on
/// cancellation. The Step-DPO authors' pipeline counts the first neutral step as the error: locate with <c>NeutralIsError</c> (the default).
/// </remarks>
public sealed class JudgeStepVerifier : IStepVerifier
{
    private readonly IChatClient _client;

    /// <summary>Creates the judge.</summary>
    /// <param name="client">The chat model.</param>
    /// <param name="modelId">Model name sent with each request. Default null (the client's default).</param>
    /// <param name="retry">Retries of transient failures. Default <see cref="RetryPolicy"/>'s defaults.</param>
    public JudgeStepVerifier(IChatClient client, string? modelId = null, RetryPolicy? retry = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        ModelId = modelId;
        Retry = retry ?? new RetryPolicy();
    }

    /// <summary>"judge".</summary>
    public string Name => "judge";

    /// <summary>Model name sent with each request.</summary>
    public string? ModelId { get; }

    /// <summary>Retries of transient failures.</summary>
    public RetryPolicy Retry { get; }

    /// <summary>Most tokens of the judge's reply. Default 2048.</summary>
    public int MaxOutputTokens { get; init; } = 2048;

    /// <summary>Let request failures propagate instead of answering Unknown (used by the preference pipeline).</summary>
    internal bool ThrowOnFailure { get; init; }

    /// <summary>This judge as the preference pipeline runs it, leaving this instance unchanged: request failures propagate.</summary>
    internal JudgeStepVerifier ForPipeline() => new(_client, ModelId, Retry) { MaxOutputTokens = MaxOutputTokens, ThrowOnFailure = true };

    /// <inheritdoc/>
    public async Task<IReadOnlyList<StepCheck>> VerifyAsync(StepVerificationInput input, CancellationToken cancellationToken = default)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        int n = input.Steps.Count;
        StepCheck[] All(string evidence) => Enumerable.Repeat(new StepCheck(StepVerdict.Unknown, evidence), n).ToArray();
        if (n == 0) return Array.Empty<StepCheck>();

        string reply;
        try
        {
            var options = new ChatOptions { ModelId = ModelId, Temperature = 0, MaxOutputTokens = MaxOutputTokens };
            var response = await Retry.ExecuteAsync(ct => _client.GetResponseAsync(BuildMessages(input), options, ct), cancellationToken).ConfigureAwait(false);
            reply = response.Text ?? string.Empty;
        }
        catch (Exception e) when (!ThrowOnFailure && (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested))
        {
            return All($"judge failed: {e.Message}");
        }

        var verdicts = JudgeReplyParser.Parse(reply, n);
        if (verdicts is null)
            return All("the judge's reply has no readable Final Decision block");
        string analysis = JudgeReplyParser.Analysis(reply);
        return verdicts.Select((v, i) => v == StepVerdict.Unknown
            ? StepCheck.Unknown
            : new StepCheck(v, v == StepVerdict.Correct ? "judged correct" : $"judged {v.ToString().ToLowerInvariant()}: {analysis}")).ToArray();
    }

    internal static IReadOnlyList<ChatMessage> BuildMessages(StepVerificationInput input)
    {
        var user = new StringBuilder();
        user.Append("Problem:\n").Append(input.Problem.Trim()).Append("\n\n");
        if (!string.IsNullOrWhiteSpace(input.ReferenceSolution))
            user.Append("A correct reference solution:\n").Append(input.ReferenceSolution.Trim()).Append("\n\n");
        if (!string.IsNullOrWhiteSpace(input.ReferenceAnswer))
            user.Append("The correct final answer is: ").Append(input.ReferenceAnswer.Trim()).Append("\n\n");
        user.Append("A student's solution, which may contain mistakes:\n");
        for (int i = 0; i < input.Steps.Count; i++)
            user.Append("Step ").Append(i + 1).Append(": ").Append(input.Steps[i].Trim()).Append('\n');
        user.Append("\nGo through the student's steps in order and compare them with the problem and the reference. ")
            .Append("Write a short analysis. Then end your reply with a block that starts with the line \"Final Decision:\" ")
            .Append("and gives one verdict per step, in order, in the form \"Step 1: correct; Step 2: neutral; Step 3: incorrect\". ")
            .Append("A step is correct when it is right and moves towards the answer, neutral when it is not wrong but does not help, ")
            .Append("and incorrect when it contains any mistake (a wrong calculation, a misread fact, a wrong method). ")
            .Append("Stop the list at the first incorrect step.");
        return new[]
        {
            new ChatMessage(ChatRole.System, "You are a meticulous math teacher who checks solutions one step at a time."),
            new ChatMessage(ChatRole.User, user.ToString()),
        };
    }
}
