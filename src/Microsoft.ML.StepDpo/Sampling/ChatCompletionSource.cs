using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;

namespace Microsoft.ML.StepDpo.Sampling;

/// <summary>
/// Continues partial solutions with any <see cref="IChatClient"/>: Azure OpenAI, an OpenAI-protocol server
/// (vLLM, TGI, llama.cpp through <c>Microsoft.Extensions.AI.OpenAI</c>), Ollama. Each continuation is one
/// request; requests run in parallel up to <see cref="ChatCompletionSourceOptions.MaxParallelRequests"/> and
/// transient failures are retried with backoff. A server's reply that the prompt does not fit the model's context is
/// thrown as a <see cref="ContextLengthExceededException"/> (the server's message kept, its exception inner); other
/// errors pass through unchanged.
/// </summary>
/// <remarks>
/// Chat models cannot be relied on to continue an assistant message, so the partial solution is given in the user
/// message with the instruction to write only what follows it. A reply that nevertheless restates the prefix or its
/// last "Step k:" marker has that part removed.
/// </remarks>
public sealed class ChatCompletionSource : ICompletionSource
{
    private static readonly Regex s_lastMarker = new(@"Step\s+(\d+)\s*:\s*$", RegexOptions.CultureInvariant);

    private readonly IChatClient _client;
    private readonly ChatCompletionSourceOptions _options;
    private readonly SemaphoreSlim _gate;

    /// <summary>Creates the source.</summary>
    public ChatCompletionSource(IChatClient client, ChatCompletionSourceOptions? options = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _options = options ?? new ChatCompletionSourceOptions();
        if (_options.MaxParallelRequests < 1)
            throw new ArgumentOutOfRangeException(nameof(options), "MaxParallelRequests must be at least 1.");
        _gate = new SemaphoreSlim(_options.MaxParallelRequests);
    }

    /// <inheritdoc/>
    public async Task<IReadOnlyList<string>> CompleteAsync(CompletionRequest request, CancellationToken cancellationToken = default)
    {
        if (request is null) throw new ArgumentNullException(nameof(request));
        request.Validate();
        var messages = BuildMessages(request.Problem, request.Prefix, _options.SystemPrompt);
        var tasks = Enumerable.Range(0, request.Count).Select(i => OneAsync(messages, request, i, cancellationToken));
        return await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    private async Task<string> OneAsync(IReadOnlyList<ChatMessage> messages, CompletionRequest request, int index, CancellationToken cancellationToken)
    {
        var s = request.Settings;
        var chatOptions = new ChatOptions
        {
            ModelId = _options.ModelId,
            Temperature = (float)s.Temperature,
            TopP = (float)s.TopP,
            MaxOutputTokens = s.MaxNewTokens,
            Seed = s.Seed + index,
            StopSequences = s.StopSequences.Count == 0 ? null : s.StopSequences.ToList(),
        };
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ChatResponse response;
            try
            {
                response = await _options.Retry.ExecuteAsync(
                    ct => _client.GetResponseAsync(messages, chatOptions, ct), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (ServerContextLengthReplies.Recognise(e) is { } beyondContext)
            {
                // "The prompt is longer than the model's context" (a 4xx: never retried): the step-preference
                // pipeline skips and counts the problem, as with a local model.
                throw beyondContext;
            }
            return StripEcho(response.Text ?? string.Empty, request.Prefix);
        }
        finally
        {
            _gate.Release();
        }
    }

    internal static IReadOnlyList<ChatMessage> BuildMessages(string problem, string prefix, string systemPrompt)
    {
        string user = string.IsNullOrWhiteSpace(prefix)
            ? $"Problem:\n{problem}"
            : $"Problem:\n{problem}\n\nHere is the beginning of a solution. Continue it from exactly where it stops: write only the text that comes next, not the steps already given.\n\n{prefix}";
        return new[] { new ChatMessage(ChatRole.System, systemPrompt), new ChatMessage(ChatRole.User, user) };
    }

    /// <summary>Removes a restated prefix, or a restated final "Step k:" marker, from the start of a reply.</summary>
    internal static string StripEcho(string reply, string prefix)
    {
        string text = reply;
        string trimmedPrefix = prefix.Trim();
        if (trimmedPrefix.Length > 0 && text.TrimStart().StartsWith(trimmedPrefix, StringComparison.Ordinal))
            text = text.TrimStart()[trimmedPrefix.Length..];
        else if (s_lastMarker.Match(prefix) is { Success: true } m)
        {
            var restated = new Regex(@"^\s*(?:\*\*)?\s*Step\s+" + m.Groups[1].Value + @"\s*(?:\*\*)?\s*:\s*(?:\*\*)?", RegexOptions.CultureInvariant);
            text = restated.Replace(text, string.Empty, 1);
        }
        // Prefix + continuation must read naturally: "Step 2:" + " 12+54=66."
        if (prefix.Length > 0 && !char.IsWhiteSpace(prefix[^1]) && text.Length > 0 && !char.IsWhiteSpace(text[0]))
            text = " " + text;
        return text;
    }
}
