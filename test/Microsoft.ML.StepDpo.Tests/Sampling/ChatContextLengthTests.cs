using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Verification;
using OpenAI;
using OpenAI.Chat;

namespace Microsoft.ML.StepDpo.Tests.Sampling;

/// <summary>
/// A server's "the prompt is longer than the model's context" reply reaches <see cref="ChatCompletionSource"/> through
/// the real OpenAI client (as the samples use it) and becomes a <see cref="ContextLengthExceededException"/>; other
/// errors pass through unchanged. The fake server answers with each server's own reply text and status.
/// </summary>
[TestClass]
public sealed class ChatContextLengthTests
{
    /// <summary>An OpenAI-protocol server in process: each request's body in, a status and a JSON body out.</summary>
    private sealed class FakeServer(Func<string, (HttpStatusCode Status, string Body)> answer) : HttpMessageHandler
    {
        private int _calls;

        public int Calls => _calls;

        /// <summary>Holds each request until the caller cancels it.</summary>
        public bool Hang { get; set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            string body = request.Content is null ? "" : await request.Content.ReadAsStringAsync(cancellationToken);
            if (Hang) await Task.Delay(Timeout.Infinite, cancellationToken);
            var (status, json) = answer(body);
            return new HttpResponseMessage(status) { Content = new StringContent(json, Encoding.UTF8, "application/json"), RequestMessage = request };
        }

        /// <summary>The OpenAI client over this server, with the client's own retries off (the source retries).</summary>
        public IChatClient Client() => new ChatClient("m", new ApiKeyCredential("key"), new OpenAIClientOptions
        {
            Endpoint = new Uri("http://server.test/v1"),
            Transport = new HttpClientPipelineTransport(new HttpClient(this)),
            RetryPolicy = new ClientRetryPolicy(0),
        }).AsIChatClient();
    }

    private static readonly RetryPolicy s_fastRetry = new() { MaxAttempts = 2, InitialDelay = TimeSpan.FromMilliseconds(1) };

    private static ChatCompletionSource Source(IChatClient client) =>
        new(client, new ChatCompletionSourceOptions { ModelId = "m", Retry = s_fastRetry });

    private static CompletionRequest Request(string problem = "Tom has 7 bags of 4 apples.") =>
        new(problem, "Let's think step by step.\nStep 1:", 1, new SamplingSettings { MaxNewTokens = 512 });

    private static string OpenAIError(string message, string type, string? param, string code) =>
        JsonSerializer.Serialize(new { error = new { message, type, param, code } });

    private static string VllmError(string message, string param = "input_tokens") =>
        JsonSerializer.Serialize(new { error = new { message, type = "BadRequestError", param, code = 400 } });

    private static string Completion(string content) => JsonSerializer.Serialize(new
    {
        id = "chatcmpl-1",
        @object = "chat.completion",
        created = 1700000000,
        model = "m",
        choices = new[] { new { index = 0, message = new { role = "assistant", content }, finish_reason = "stop" } },
        usage = new { prompt_tokens = 10, completion_tokens = 10, total_tokens = 20 },
    });

    // Each server's reply to a prompt longer than its context, as its source writes it (see
    // ServerContextLengthReplies.cs for the source of each), and the numbers read from it.
    [TestMethod]
    [DataRow("OpenAI / Azure OpenAI", 400,
        """{"error":{"message":"This model's maximum context length is 8192 tokens. However, you requested 9100 tokens (8900 in the messages, 200 in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}""",
        8900, 8192, "maximum context length is 8192 tokens")]
    [DataRow("vLLM renderer (tokens)", 400,
        """{"error":{"message":"You passed 5000 input tokens and requested 512 output tokens. However, the model's context length is only 4096 tokens, resulting in a maximum input length of 3584 tokens. Please reduce the length of the input prompt. (parameter=input_tokens, value=5000)","type":"BadRequestError","param":"input_tokens","code":400}}""",
        5000, 4096, "You passed 5000 input tokens")]
    [DataRow("vLLM renderer (characters)", 400,
        """{"error":{"message":"You passed 90000 input characters and requested 512 output tokens. However, the model's context length is only 4096 tokens, resulting in a maximum input length of 3584 tokens (at most 57344 characters). Please reduce the length of the input prompt.","type":"BadRequestError","param":"input_text","code":400}}""",
        0, 4096, "90000 input characters")]
    [DataRow("vLLM 0.18+", 400,
        """{"error":{"message":"This model's maximum context length is 4096 tokens. However, you requested 512 output tokens and your prompt contains at least 3585 input tokens, for a total of at least 4097 tokens. Please reduce the length of the input prompt or the number of requested output tokens. (parameter=input_tokens, value=3585)","type":"BadRequestError","param":"input_tokens","code":400}}""",
        3585, 4096, "your prompt contains at least 3585 input tokens")]
    [DataRow("vLLM 0.18+ (characters)", 400,
        """{"error":{"message":"This model's maximum context length is 4096 tokens. However, you requested 512 output tokens and your prompt contains 90000 characters (more than 57344 characters, which is the upper bound for 3584 input tokens). Please reduce the length of the input prompt or the number of requested output tokens. (parameter=input_text, value=90000)","type":"BadRequestError","param":"input_text","code":400}}""",
        0, 4096, "your prompt contains 90000 characters")]
    [DataRow("vLLM 0.10-0.17", 400,
        """{"error":{"message":"This model's maximum context length is 4096 tokens. However, your request has 5000 input tokens. Please reduce the length of the input messages.","type":"BadRequestError","param":null,"code":400}}""",
        5000, 4096, "your request has 5000 input tokens")]
    [DataRow("vLLM max_tokens check", 400,
        """{"error":{"message":"'max_tokens' or 'max_completion_tokens' is too large: 512. This model's maximum context length is 4096 tokens and your request has 3700 input tokens (512 > 4096 - 3700). None","type":"BadRequestError","param":null,"code":400}}""",
        3700, 4096, "your request has 3700 input tokens")]
    [DataRow("vLLM V1 engine", 400,
        """{"error":{"message":"The decoder prompt (length 5000) is longer than the maximum model length of 4096. Make sure that `max_model_len` is no smaller than the number of text tokens.","type":"BadRequestError","param":null,"code":400}}""",
        5000, 4096, "The decoder prompt (length 5000)")]
    [DataRow("vLLM V1 engine, prompt fills the context", 400,
        """{"error":{"message":"The decoder prompt (length 4096) plus the number of requested output tokens (at least 1) is longer than the maximum model length of 4096. Make sure that `max_model_len` is no smaller than the number of text tokens (prompt + requested output tokens).","type":"BadRequestError","param":null,"code":400}}""",
        4096, 4096, "plus the number of requested output tokens")]
    [DataRow("vLLM multimodal", 400,
        """{"object":"error","message":"The prompt (total length 6287) is too long to fit into the model (context length 4096). Make sure that `max_model_len` is no smaller than the number of text tokens plus multimodal tokens.","type":"BadRequestError","param":null,"code":400}""",
        6287, 4096, "is too long to fit into the model")]
    [DataRow("vLLM get_max_tokens", 400,
        """{"error":{"message":"Input length (5000) exceeds model's maximum context length (4096).","type":"BadRequestError","param":null,"code":400}}""",
        5000, 4096, "Input length (5000)")]
    [DataRow("TGI total tokens", 422,
        """{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 3900 `inputs` tokens and 512 `max_new_tokens`","error_type":"validation"}""",
        3900, 4096, "`inputs` tokens + `max_new_tokens` must be <= 4096")]
    [DataRow("TGI input length", 422,
        """{"error":"Input validation error: `inputs` must have less than 4000 tokens. Given: 5000","error_type":"validation"}""",
        5000, 4000, "must have less than 4000 tokens")]
    [DataRow("llama.cpp server", 400,
        """{"error":{"code":400,"message":"request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}""",
        5000, 4096, "exceeds the available context size (4096 tokens)")]
    [DataRow("llama.cpp server, older", 400,
        """{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"invalid_request_error"}}""",
        0, 0, "the request exceeds the available context size")]
    [DataRow("llama.cpp server, oldest", 400,
        """{"error":{"code":400,"message":"input (5000 tokens) is larger than the max context size (4096 tokens). skipping","type":"exceed_context_size_error"}}""",
        5000, 4096, "is larger than the max context size")]
    [DataRow("Ollama runner", 400,
        """{"error":{"message":"the input length exceeds the context length","type":"invalid_request_error","param":null,"code":null}}""",
        0, 0, "the input length exceeds the context length")]
    public async Task AServersContextLengthReplyBecomesContextLengthExceeded(string server, int status, string body, int promptTokens, int context, string serverText)
    {
        var fake = new FakeServer(_ => ((HttpStatusCode)status, body));
        using var client = fake.Client();
        var e = await Assert.ThrowsExactlyAsync<ContextLengthExceededException>(() => Source(client).CompleteAsync(Request()), server);
        Assert.AreEqual(promptTokens, e.PromptTokens, server + ": " + e.Message);
        Assert.AreEqual(context, e.ContextLength, server + ": " + e.Message);
        StringAssert.Contains(e.Message, serverText, "the server's own words are kept");
        Assert.IsFalse(e.Message.Contains('\n') || e.Message.Contains('\r'), "one line: " + e.Message);
        var inner = e.InnerException as ClientResultException;
        Assert.IsNotNull(inner, "the client's exception is the inner exception: " + e.InnerException?.GetType());
        Assert.AreEqual(status, inner.Status);
        Assert.AreEqual(1, fake.Calls, "a context-length reply is not retried");
    }

    [TestMethod]
    public async Task AContextLengthReplyInsideAnHttpRequestExceptionIsRecognised()
    {
        // A client of another kind: the reply's body in an HttpRequestException, itself wrapped.
        const string body = """{"error":{"message":"This model's maximum context length is 2048 tokens. However, your request has 2300 input tokens. Please reduce the length of the input messages.","type":"BadRequestError","param":null,"code":400}}""";
        var http = new HttpRequestException("Response status code does not indicate success: 400 (Bad Request). " + body, null, HttpStatusCode.BadRequest);
        var client = new ScriptedChatClient((_, _, _) => throw new InvalidOperationException("The chat request failed.", http));
        var e = await Assert.ThrowsExactlyAsync<ContextLengthExceededException>(() => Source(client).CompleteAsync(Request()));
        Assert.AreEqual(2300, e.PromptTokens);
        Assert.AreEqual(2048, e.ContextLength);
        Assert.AreEqual(1, client.Calls);
        Assert.IsInstanceOfType<InvalidOperationException>(e.InnerException);
    }

    [TestMethod]
    public async Task OnlyContextLengthRepliesAreMappedOtherErrorsPassThroughUnchanged()
    {
        string reply = "";
        HttpStatusCode status = HttpStatusCode.BadRequest;
        var fake = new FakeServer(_ => (status, reply));
        using var client = fake.Client();
        var source = Source(client);

        async Task<Exception> Fails(HttpStatusCode s, string body)
        {
            (status, reply) = (s, body);
            int before = fake.Calls;
            var e = await Assert.ThrowsAsync<Exception>(() => source.CompleteAsync(Request()));
            e = e is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerExceptions[0] : e;
            e.Data["calls"] = fake.Calls - before;
            return e;
        }

        // The same server's context-length reply is mapped...
        var mapped = await Fails(HttpStatusCode.BadRequest, VllmError("This model's maximum context length is 4096 tokens. However, your request has 5000 input tokens. Please reduce the length of the input messages."));
        Assert.IsInstanceOfType<ContextLengthExceededException>(mapped);

        // ...an unrelated 400 is not (and is not retried)...
        var unrelated = await Fails(HttpStatusCode.BadRequest, VllmError("[{'type': 'less_than_equal', 'loc': ('body', 'temperature'), 'msg': 'Input should be less than or equal to 2'}]", "temperature"));
        Assert.IsInstanceOfType<ClientResultException>(unrelated);
        Assert.AreEqual(400, ((ClientResultException)unrelated).Status);
        Assert.AreEqual(1, unrelated.Data["calls"]);

        // ...a 500 is a failure of the server, retried as before and reported as it is, whatever its text says...
        var serverError = await Fails(HttpStatusCode.InternalServerError, OpenAIError("Internal server error", "InternalServerError", null, "500"));
        Assert.IsInstanceOfType<ClientResultException>(serverError);
        Assert.AreEqual(2, serverError.Data["calls"], "5xx is retried (MaxAttempts 2)");
        var serverErrorWithText = await Fails(HttpStatusCode.InternalServerError, OpenAIError("request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it", "server_error", null, "500"));
        Assert.IsInstanceOfType<ClientResultException>(serverErrorWithText);

        // ...and so is a request whose max_tokens alone exceeds the context: the settings are wrong, not one prompt.
        var settings = await Fails(HttpStatusCode.BadRequest, VllmError("'max_tokens' or 'max_completion_tokens' is too large: 8192. This model's maximum context length is 4096 tokens and your request has 30 input tokens (8192 > 4096 - 30). None", "max_tokens"));
        Assert.IsInstanceOfType<ClientResultException>(settings);
        var tgiSettings = await Fails((HttpStatusCode)422, """{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 12 `inputs` tokens and 5000 `max_new_tokens`","error_type":"validation"}""");
        Assert.IsInstanceOfType<ClientResultException>(tgiSettings);

        // The caller's cancellation stays a cancellation.
        fake.Hang = true;
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAsync<OperationCanceledException>(() => source.CompleteAsync(Request(), cts.Token));
    }

    private sealed class ProblemRow
    {
        public string Problem { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    private const string LongProblem = "Tom counts 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and on to 60. How many numbers?";

    [TestMethod]
    public async Task ARemotePolicysContextLengthReplySkipsThatProblemAndCountsIt()
    {
        // A vLLM-like server whose context is too short for one problem's prompt; the others get one right and one
        // wrong solution by the parity of the request's seed.
        var fake = new FakeServer(body =>
        {
            using var json = JsonDocument.Parse(body);
            if (body.Contains("Tom counts", StringComparison.Ordinal))
                return (HttpStatusCode.BadRequest, VllmError("You passed 5000 input tokens and requested 64 output tokens. However, the model's context length is only 4096 tokens, resulting in a maximum input length of 4032 tokens. Please reduce the length of the input prompt."));
            long seed = json.RootElement.GetProperty("seed").GetInt64();
            return (HttpStatusCode.OK, Completion(seed % 2 == 0 ? " 7*4=28.\nThe answer is 28." : " 7*4=29.\nThe answer is 29."));
        });
        using var client = fake.Client();
        var source = Source(client);
        var ml = new MLContext(seed: 1);
        IDataView Problems() => ml.Data.LoadFromEnumerable(new[]
        {
            new ProblemRow { Problem = "Tom has 7 bags of 4 apples. How many apples?", Answer = "28" },
            new ProblemRow { Problem = LongProblem, Answer = "60" },
            new ProblemRow { Problem = "Ann has 7 boxes of 4 pens. How many pens?", Answer = "28" },
        });
        string dir = Directory.CreateTempSubdirectory("stepprefs-remote-context-").FullName;
        StepPreferenceOptions Options(string name) => new()
        {
            Policy = source,
            Verifiers = new List<IStepVerifier> { new ArithmeticStepVerifier() },
            OutputPath = Path.Combine(dir, name + ".jsonl"),
            SamplesPerProblem = 4,
            RectificationSamples = 2,
            Sampling = new SamplingSettings { MaxNewTokens = 64 },
        };
        try
        {
            var options = Options("pairs");
            var report = await ml.StepDpo().BuildStepPreferencesAsync(Problems(), options);
            Assert.AreEqual(3, report.Problems, report.ToString());
            Assert.AreEqual(1L, report.BeyondContext, report.ToString());
            var rows = File.ReadAllLines(options.OutputPath!).Select(l => JsonSerializer.Deserialize<Dictionary<string, string>>(l)!).ToList();
            CollectionAssert.AreEquivalent(
                new[] { "Tom has 7 bags of 4 apples. How many apples?", "Ann has 7 boxes of 4 pens. How many pens?" },
                rows.Select(r => r["prompt"]).Distinct().ToArray(), "the other problems produce pairs");
            Assert.IsTrue(rows.All(r => r["chosen"].Contains("7*4=28.") && r["rejected"].Contains("7*4=29.")), string.Join("\n", rows.Select(r => r["chosen"] + " | " + r["rejected"])));

            var strict = Options("strict");
            strict.FailBeyondContext = true;
            var e = await Assert.ThrowsExactlyAsync<ContextLengthExceededException>(() => ml.StepDpo().BuildStepPreferencesAsync(Problems(), strict));
            StringAssert.Contains(e.Message, "Tom counts 1, 2, 3");
            StringAssert.Contains(e.Message, "4096");
            Assert.IsFalse(e.Message.Contains('\n'), e.Message);
            Assert.AreEqual(5000, e.PromptTokens);
            Assert.AreEqual(4096, e.ContextLength);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
