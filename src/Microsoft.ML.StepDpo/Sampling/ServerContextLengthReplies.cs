using System.Globalization;
using System.Net.Http;
using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Microsoft.ML.StepDpo.Sampling;

/// <summary>
/// Recognises an inference server's "the prompt is longer than the model's context" reply in the exception a chat
/// client throws, and turns it into a <see cref="ContextLengthExceededException"/> (with the prompt's length and the
/// context when the reply gives them, else 0).
/// </summary>
/// <remarks>
/// The reply is looked for in each exception of the chain (inner and aggregated ones included): its message, and the
/// body of the HTTP response it carries where it has one (System.ClientModel's <c>ClientResultException</c>, which the
/// OpenAI client throws, through its <c>GetRawResponse()</c>: the OpenAI client puts only a body of OpenAI's shape,
/// <c>{"error":{"message":…}}</c>, into its message; TGI's <c>{"error":"…"}</c> and vLLM's older
/// <c>{"object":"error","message":…}</c> are found in the body only). A reply is mapped only if its HTTP status, where
/// one is known, is a 4xx: a 5xx is a failure of the server (retried as transient, then reported as it is). A reply
/// saying that the requested output alone (max_tokens) exceeds the context is not mapped either: that is a setting
/// that no prompt can meet, not one problem too long, and it should fail the run with the server's words.
/// </remarks>
internal static class ServerContextLengthReplies
{
    private const RegexOptions Options = RegexOptions.IgnoreCase | RegexOptions.CultureInvariant;

    // Named groups: p = the prompt's tokens, n = the context (or the server's input limit), k = the requested output
    // tokens. Each pattern is written from the server's source, cited beside it (or, where its source was not at hand,
    // from the reply as quoted verbatim, said so); the most specific first.
    private static readonly Regex[] s_replies =
    {
        // OpenAI API and Azure OpenAI (error code "context_length_exceeded"), and vLLM up to 0.10
        // (vllm-project/vllm vllm/entrypoints/openai/serving_engine.py, `_validate_input`, max_tokens given):
        // "This model's maximum context length is N tokens. However, you requested M tokens (P in the messages, C in the completion). …"
        new(@"maximum context length is (?<n>\d+) tokens\.?\s*However,? you requested \d+ tokens \((?<p>\d+) in the messages, (?<k>\d+) in the completion\)", Options),
        // OpenAI API, chat models (its service's source is not public; the reply as users quote it):
        // "This model's maximum context length is N tokens. However, your messages resulted in M tokens. …"
        new(@"maximum context length is (?<n>\d+) tokens\.?\s*However,? your messages resulted in (?<p>\d+) tokens", Options),
        // vLLM up to 0.10, no max_tokens given (the same file and method): "… However, you requested M tokens in the messages, …"
        new(@"maximum context length is (?<n>\d+) tokens\.?\s*However,? you requested (?<p>\d+) tokens in the messages", Options),
        // vLLM 0.18 and later (vllm-project/vllm vllm/renderers/params.py, a later revision than the one read here,
        // which has the "You passed …" wording below; the text as these servers send it, quoted verbatim in users' logs):
        // "… However, you requested K output tokens and your prompt contains at least M input tokens, for a total of at least T tokens. …"
        new(@"maximum context length is (?<n>\d+) tokens\.?\s*However,? you requested (?<k>\d+) output tokens and your prompt contains (?:at least )?(?<p>\d+) input tokens", Options),
        // The same, its check on characters before tokenizing (no token count):
        // "… However, you requested K output tokens and your prompt contains C characters (more than X characters, which is the upper bound for I input tokens). …"
        new(@"maximum context length is (?<n>\d+) tokens\.?\s*However,? you requested (?<k>\d+) output tokens and your prompt contains \d+ characters", Options),
        // vLLM 0.10-0.17 (vllm-project/vllm vllm/entrypoints/renderer.py, `_create_tokens_prompt`):
        // "This model's maximum context length is N tokens. However, your request has M input tokens. Please reduce the length of the input messages."
        new(@"maximum context length is (?<n>\d+) tokens\.?\s*However,? your (?:request has|prompt contains(?: at least)?) (?<p>\d+) input tokens", Options),
        // vLLM (serving_engine.py, `_validate_input`, max_tokens given):
        // "'max_tokens' or 'max_completion_tokens' is too large: K. This model's maximum context length is N tokens and your request has M input tokens (K > N - M)."
        new(@"is too large: (?<k>\d+)\.\s*This model's maximum context length is (?<n>\d+) tokens and your request has (?<p>\d+) input tokens", Options),
        // vLLM renderer (vllm-project/vllm vllm/renderers/params.py, `TokenizeParams._token_len_check`):
        // "You passed M input tokens and requested K output tokens. However, the model's context length is only N tokens, resulting in a maximum input length of N-K tokens. …"
        new(@"You passed (?<p>\d+) input tokens and requested (?<k>\d+) output tokens\.\s*However,? the model's context length is only (?<n>\d+) tokens", Options),
        // The same file, `_text_len_check` (refused before tokenizing, so no token count): "You passed X input characters and requested K output tokens. However, the model's context length is only N tokens, …"
        new(@"You passed \d+ input characters and requested (?<k>\d+) output tokens\.\s*However,? the model's context length is only (?<n>\d+) tokens", Options),
        // vLLM V1 engine (vllm-project/vllm vllm/v1/engine/input_processor.py, `_validate_prompt_len`):
        // "The decoder prompt (length M) is longer than the maximum model length of N. …" and
        // "The decoder prompt (length M) plus the number of requested output tokens (at least 1) is longer than the maximum model length of N. …"
        new(@"The (?:decoder )?prompt \(length (?<p>\d+)\)(?: plus the number of requested output tokens \(at least 1\))? is longer than the maximum model length of (?<n>\d+)", Options),
        // vLLM, earlier releases (multimodal prompts; the reply quoted in vllm-project/vllm issue #12165):
        // "The prompt (total length M) is too long to fit into the model (context length N). …"
        new(@"The prompt \(total length (?<p>\d+)\) is too long to fit into the model \(context length (?<n>\d+)\)", Options),
        // vLLM (vllm-project/vllm vllm/entrypoints/utils.py, `get_max_tokens`): "Input length (M) exceeds model's maximum context length (N)."
        new(@"Input length \((?<p>\d+)\) exceeds model's maximum context length \((?<n>\d+)\)", Options),
        // Hugging Face TGI, HTTP 422 (huggingface/text-generation-inference router/src/validation.rs, `ValidationError`,
        // prefixed "Input validation error: " in router/src/infer/mod.rs):
        // "`inputs` tokens + `max_new_tokens` must be <= N. Given: M `inputs` tokens and K `max_new_tokens`"
        new(@"`inputs` tokens \+ `max_new_tokens` must be <= (?<n>\d+)\. Given: (?<p>\d+) `inputs` tokens and (?<k>\d+) `max_new_tokens`", Options),
        // TGI, the same file: "`inputs` must have less than N tokens. Given: M" (N = --max-input-tokens)
        new(@"`inputs` must have less than (?<n>\d+) tokens\. Given: (?<p>\d+)", Options),
        // llama.cpp server (ggml-org/llama.cpp tools/server/server-context.cpp, ERROR_TYPE_EXCEED_CONTEXT_SIZE, HTTP 400,
        // type "exceed_context_size_error"): "request (M tokens) exceeds the available context size (N tokens), try increasing it";
        // earlier: "input (M tokens) is larger than the max context size (N tokens). skipping"
        new(@"(?:request|input) \((?<p>\d+) tokens\) (?:exceeds (?:the available )?context size|is larger than the max context size) \((?<n>\d+) tokens\)", Options),
        // llama.cpp server, earlier builds (the same error type without the counts): "the request exceeds the available context size, try increasing it"
        new(@"the request exceeds the available context size", Options),
        // Ollama runner (ollama/ollama runner/ollamarunner/runner.go, `errorInputTooLong`; chat prompts are truncated
        // to num_ctx unless truncation is off): "the input length exceeds the context length"
        new(@"the input length exceeds the context length(?: of (?<n>\d+))?", Options),
        // The error codes alone: OpenAI's "context_length_exceeded", llama.cpp's "exceed_context_size_error" (whose
        // JSON also carries "n_prompt_tokens" and "n_ctx": tools/server/server-task.cpp, `server_task_result_error::to_json`).
        new(@"\bcontext_length_exceeded\b|\bexceed_context_size_error\b", Options),
    };

    private static readonly Regex s_promptField = new(@"""n_prompt_tokens""\s*:\s*(\d+)", Options);
    private static readonly Regex s_contextField = new(@"""n_ctx""\s*:\s*(\d+)", Options);
    private static readonly Regex s_whitespace = new(@"\s+", RegexOptions.CultureInvariant);

    private const int MaxQuoted = 400;

    /// <summary>
    /// The <see cref="ContextLengthExceededException"/> for <paramref name="error"/> (kept as its inner exception), or
    /// null where it is not a context-length reply. Cancellation is never one.
    /// </summary>
    public static ContextLengthExceededException? Recognise(Exception error)
    {
        if (error is OperationCanceledException or ContextLengthExceededException) return null;
        var chain = Chain(error).ToList();
        if (chain.Any(x => x is OperationCanceledException)) return null;
        int? status = chain.Select(Status).FirstOrDefault(s => s is not null);
        if (status is not null and not (>= 400 and <= 499)) return null;

        var texts = chain.SelectMany(Texts).Where(t => !string.IsNullOrWhiteSpace(t)).ToList();
        foreach (var pattern in s_replies)
        {
            foreach (string text in texts)
            {
                var m = pattern.Match(text);
                if (!m.Success) continue;
                int p = Number(m.Groups["p"]), n = Number(m.Groups["n"]), k = Number(m.Groups["k"]);
                if (p == 0 && n == 0)
                {
                    // llama.cpp's JSON carries the numbers beside its error type.
                    p = texts.Select(t => s_promptField.Match(t)).Where(x => x.Success).Select(x => Number(x.Groups[1])).FirstOrDefault();
                    n = texts.Select(t => s_contextField.Match(t)).Where(x => x.Success).Select(x => Number(x.Groups[1])).FirstOrDefault();
                }
                // The requested output alone does not fit: the settings are wrong, whatever the prompt.
                if (k > 0 && n > 0 && k >= n) return null;
                return new ContextLengthExceededException(Message(p, n, k, Quote(text, m.Index)), p, n, error);
            }
        }
        return null;
    }

    private static string Message(int prompt, int context, int output, string quoted)
    {
        string lengths = prompt > 0 && context > 0
            ? $" (prompt {prompt} tokens{(output > 0 ? $" + {output} new tokens" : "")}, context {context} tokens)"
            : context > 0 ? $" (context {context} tokens)" : "";
        return $"The server refused the prompt as longer than the model's context{lengths}: \"{quoted}\". " +
               "Shorten the problem, lower MaxNewTokens or use a model with a longer context.";
    }

    // The server's words: the line of the text holding the match, on one line and of bounded length.
    private static string Quote(string text, int index)
    {
        int start = index == 0 ? 0 : text.LastIndexOf('\n', index - 1) + 1;
        int end = text.IndexOf('\n', index);
        string line = s_whitespace.Replace(text[start..(end < 0 ? text.Length : end)], " ").Trim();
        return line.Length <= MaxQuoted ? line : line[..MaxQuoted] + "…";
    }

    private static int Number(Group g) =>
        g.Success && int.TryParse(g.Value, NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : 0;

    private static IEnumerable<Exception> Chain(Exception error)
    {
        var pending = new Stack<Exception>();
        pending.Push(error);
        for (int seen = 0; pending.Count > 0 && seen < 32; seen++)
        {
            var x = pending.Pop();
            yield return x;
            if (x is AggregateException a)
                for (int i = a.InnerExceptions.Count - 1; i >= 0; i--) pending.Push(a.InnerExceptions[i]);
            else if (x.InnerException is { } inner)
                pending.Push(inner);
        }
    }

    // The HTTP status an exception carries: HttpRequestException's, or an integer Status (System.ClientModel's
    // ClientResultException, as RetryPolicy reads it).
    private static int? Status(Exception x)
    {
        if (x is HttpRequestException http) return http.StatusCode is { } code ? (int)code : null;
        try
        {
            return x.GetType().GetProperty("Status")?.GetValue(x) is int s && s > 0 ? s : null;
        }
        catch (Exception e) when (e is TargetInvocationException or MethodAccessException or InvalidOperationException)
        {
            return null;
        }
    }

    // The message, then the response body where the exception carries one (System.ClientModel's
    // ClientResultException.GetRawResponse().Content, read without referencing System.ClientModel): its JSON string
    // values one by one (the server's message alone), then the whole body.
    private static IEnumerable<string> Texts(Exception x)
    {
        yield return x.Message;
        string? body = Body(x);
        if (body is null) yield break;
        foreach (string value in JsonStrings(body)) yield return value;
        yield return body;
    }

    private static string? Body(Exception x)
    {
        try
        {
            var response = x.GetType().GetMethod("GetRawResponse", BindingFlags.Public | BindingFlags.Instance, Type.EmptyTypes)?.Invoke(x, null);
            var content = response?.GetType().GetProperty("Content")?.GetValue(response);
            return content?.ToString();
        }
        catch (Exception e) when (e is TargetInvocationException or MethodAccessException or InvalidOperationException or NotSupportedException)
        {
            return null; // no buffered body
        }
    }

    private static List<string> JsonStrings(string body)
    {
        var values = new List<string>();
        try
        {
            using var doc = JsonDocument.Parse(body);
            Collect(doc.RootElement, values, 0);
        }
        catch (JsonException)
        {
            // Not JSON: the whole body is searched.
        }
        return values;
    }

    private static void Collect(JsonElement e, List<string> values, int depth)
    {
        if (depth > 8 || values.Count > 64) return;
        switch (e.ValueKind)
        {
            case JsonValueKind.String:
                values.Add(e.GetString()!);
                break;
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject()) Collect(p.Value, values, depth + 1);
                break;
            case JsonValueKind.Array:
                foreach (var item in e.EnumerateArray()) Collect(item, values, depth + 1);
                break;
        }
    }
}
