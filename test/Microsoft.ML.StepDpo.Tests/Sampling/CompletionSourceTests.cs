using System.Net;
using Microsoft.Extensions.AI;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Tests.Modeling;
using Microsoft.ML.StepDpo.Sampling;

namespace Microsoft.ML.StepDpo.Tests.Sampling;

[TestClass]
public sealed class CompletionSourceTests
{
    private sealed class StatusException(int status) : Exception("status " + status)
    {
        public int Status { get; } = status;
    }

    [TestMethod]
    public void TransientErrorsAreRecognised()
    {
        var none = CancellationToken.None;
        Assert.IsTrue(RetryPolicy.IsTransient(new HttpRequestException("x", null, HttpStatusCode.TooManyRequests), none));
        Assert.IsTrue(RetryPolicy.IsTransient(new HttpRequestException("connection refused"), none));
        Assert.IsTrue(RetryPolicy.IsTransient(new HttpRequestException("x", null, HttpStatusCode.BadGateway), none));
        Assert.IsFalse(RetryPolicy.IsTransient(new HttpRequestException("x", null, HttpStatusCode.Unauthorized), none));
        Assert.IsTrue(RetryPolicy.IsTransient(new StatusException(503), none), "OpenAI client's ClientResultException carries Status");
        Assert.IsFalse(RetryPolicy.IsTransient(new StatusException(400), none));
        Assert.IsTrue(RetryPolicy.IsTransient(new TaskCanceledException("HttpClient timeout"), none));
        Assert.IsTrue(RetryPolicy.IsTransient(new InvalidOperationException("wrapped", new TimeoutException()), none));
        Assert.IsFalse(RetryPolicy.IsTransient(new ArgumentException("bad"), none));
        Assert.IsFalse(RetryPolicy.IsTransient(new ContextLengthExceededException("too long", 5000, 4096, new HttpRequestException("x", null, HttpStatusCode.BadGateway)), none),
            "a prompt beyond the context never fits, whatever reported it");
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.IsFalse(RetryPolicy.IsTransient(new OperationCanceledException(cts.Token), cts.Token), "the caller's own cancellation is final");
    }

    [TestMethod]
    public async Task RetriesTransientFailuresThenGivesUp()
    {
        var policy = new RetryPolicy { MaxAttempts = 3, InitialDelay = TimeSpan.FromMilliseconds(1) };
        int calls = 0;
        int result = await policy.ExecuteAsync(_ => ++calls < 3 ? throw new HttpRequestException("x", null, HttpStatusCode.ServiceUnavailable) : Task.FromResult(7), default);
        Assert.AreEqual(7, result);
        Assert.AreEqual(3, calls);

        calls = 0;
        await Assert.ThrowsExactlyAsync<HttpRequestException>(() => policy.ExecuteAsync<int>(_ => { calls++; throw new HttpRequestException("x", null, HttpStatusCode.ServiceUnavailable); }, default));
        Assert.AreEqual(3, calls, "MaxAttempts in all");

        calls = 0;
        await Assert.ThrowsExactlyAsync<ArgumentException>(() => policy.ExecuteAsync<int>(_ => { calls++; throw new ArgumentException("x"); }, default));
        Assert.AreEqual(1, calls, "non-transient errors are not retried");
    }

    [TestMethod]
    public async Task ChatSourceSendsSettingsAndStripsRestatedPrefix()
    {
        var client = new ScriptedChatClient((_, o, call) => (o!.Seed % 3) switch
        {
            0 => "Step 2: 12+54=66.\nThe answer is 66.",      // restates the marker
            1 => "**Step 2:** 12+54=66.\nThe answer is 66.",  // bold
            _ => "12+54=66.\nThe answer is 66.",              // continues directly
        });
        var source = new ChatCompletionSource(client, new ChatCompletionSourceOptions { ModelId = "m", MaxParallelRequests = 2 });
        string prefix = "Let's think step by step.\nStep 1: 6*9=54.\nStep 2:";
        var results = await source.CompleteAsync(new CompletionRequest("problem", prefix, 3, new SamplingSettings { Seed = 30, MaxNewTokens = 64 }));
        Assert.AreEqual(3, results.Count);
        foreach (var r in results)
            Assert.AreEqual(" 12+54=66.\nThe answer is 66.", r);
        var seeds = client.Sent.Select(s => s.Options!.Seed).OrderBy(s => s).ToArray();
        CollectionAssert.AreEqual(new long?[] { 30, 31, 32 }, seeds);
        var first = client.Sent.First();
        Assert.AreEqual("m", first.Options!.ModelId);
        Assert.AreEqual(0.8f, first.Options.Temperature);
        Assert.AreEqual(0.95f, first.Options.TopP);
        Assert.AreEqual(64, first.Options.MaxOutputTokens);
        StringAssert.Contains(first.Messages.Last().Text, prefix);

        Assert.AreEqual(" rest", ChatCompletionSource.StripEcho(prefix + " rest", prefix), "an echoed prefix is removed");
    }

    [TestMethod]
    public async Task LocalModelBatchesConcurrentRequests()
    {
        SingleThread.Enter();
        try
        {
            var (model, tokenizer) = BigramModel.Create(BigramModel.Chain(':', " 90."));
            // The generation thread takes what is queued when it wakes (at least the first request) and, encoding it,
            // waits until all twelve are queued: the rest then wait together, however the threads are scheduled.
            using var allQueued = new ManualResetEventSlim();
            var gated = new GatedTokenizer(tokenizer, allQueued);
            using var source = new LocalModelCompletionSource(model, gated, BigramModel.Template, maxBatchRows: 64, ownsModel: true);
            var settings = new SamplingSettings { MaxNewTokens = 10 };
            var tasks = Enumerable.Range(0, 12).Select(i => source.CompleteAsync(new CompletionRequest($"problem {i}", $"Let's think step by step.\nStep {i % 3 + 1}:", 4, settings))).ToList();
            allQueued.Set();
            var results = await Task.WhenAll(tasks);
            Assert.IsTrue(results.All(r => r.Count == 4 && r.All(t => t == " 90.")), string.Join("|", results.SelectMany(r => r)));
            Assert.IsTrue(source.Batches is 1 or 2, $"{source.Batches} batches for 12 requests queued together");

            // A request larger than the row budget is generated in chunks; stop sequences cut the text.
            using var small = new LocalModelCompletionSource(BigramModel.Create(BigramModel.Chain(':', " 90.")).Model, tokenizer, BigramModel.Template, maxBatchRows: 3, ownsModel: true);
            var cut = await small.CompleteAsync(new CompletionRequest("p", "Step 1:", 7, settings with { StopSequences = new[] { "0" } }));
            Assert.AreEqual(7, cut.Count);
            Assert.IsTrue(cut.All(t => t == " 9"), string.Join("|", cut));
            Assert.AreEqual(3, small.Batches);
        }
        finally
        {
            SingleThread.Exit();
        }
    }

    /// <summary>A tokenizer whose first <see cref="Encode"/> waits for a signal (a hang guard of 10 minutes).</summary>
    private sealed class GatedTokenizer(ITextTokenizer inner, ManualResetEventSlim open) : ITextTokenizer
    {
        public int? EosId => inner.EosId;

        public int[] Encode(string text)
        {
            if (!open.Wait(TimeSpan.FromMinutes(10))) throw new TimeoutException("the requests were never all queued");
            return inner.Encode(text);
        }

        public string Decode(ReadOnlySpan<int> ids) => inner.Decode(ids);
    }
}
