using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Text;
using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.StepDpo.Sampling;

namespace Microsoft.ML.StepDpo.Tests.Sampling;

/// <summary>A completion source whose continuations are a function of (problem, prefix, sample index); records the requests.</summary>
internal sealed class ScriptedCompletionSource(Func<CompletionRequest, int, string> continuation) : ICompletionSource
{
    public ConcurrentQueue<CompletionRequest> Requests { get; } = new();

    public int Calls => Requests.Count;

    public Func<CompletionRequest, Exception?>? Fail { get; set; }

    public Task<IReadOnlyList<string>> CompleteAsync(CompletionRequest request, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (Fail?.Invoke(request) is { } e) throw e;
        Requests.Enqueue(request);
        return Task.FromResult<IReadOnlyList<string>>(Enumerable.Range(0, request.Count).Select(i => continuation(request, i)).ToList());
    }
}

/// <summary>An in-process chat client that answers from a script and records what it was sent.</summary>
internal sealed class ScriptedChatClient(Func<IList<ChatMessage>, ChatOptions?, int, string> reply) : IChatClient
{
    private int _calls;

    public ConcurrentQueue<(IList<ChatMessage> Messages, ChatOptions? Options)> Sent { get; } = new();

    public int Calls => _calls;

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var list = messages.ToList();
        Sent.Enqueue((list, options));
        int call = Interlocked.Increment(ref _calls);
        return Task.FromResult(new ChatResponse(new ChatMessage(ChatRole.Assistant, reply(list, options, call))));
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var r = await GetResponseAsync(messages, options, cancellationToken);
        yield return new ChatResponseUpdate(ChatRole.Assistant, r.Text);
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => null;

    public void Dispose() { }
}

/// <summary>
/// A real Qwen2 (TorchSharp) whose output is a character bigram chain: the transformer layers are zeroed, so the
/// hidden state is the embedding of the current character, and the LM head scores the allowed successors. One
/// successor makes generation deterministic; several equal ones make it sample among them.
/// </summary>
internal static class BigramModel
{
    public const char End = '\0';

    public static readonly PromptTemplate Template = new("plain", "{instruction}\n", "");

    /// <param name="successors">The allowed successors of each character.</param>
    /// <param name="context">The model's context (max_position_embeddings); default that of <see cref="Qwen2Config.Tiny"/>.</param>
    public static (Qwen2ForCausalLM Model, ByteLevelBpeTokenizer Tokenizer) Create(IReadOnlyDictionary<char, string> successors, int? context = null)
    {
        var tokenizer = CharacterTokenizer.Create(CharacterTokenizer.AsciiAlphabet);
        int vocab = tokenizer.VocabularySize;
        int hidden = 128;
        var config = Qwen2Config.Tiny(vocab: vocab, hidden: hidden, layers: 1, heads: 4, kvHeads: 2, intermediate: 32, tied: false);
        if (context is int c) config = config with { MaxPositionEmbeddings = c };
        var model = new Qwen2ForCausalLM(config, ScalarType.Float32);
        int Id(char c) => c == End ? tokenizer.EosId!.Value : tokenizer.Encode(c.ToString()).Single();
        using (torch.no_grad())
        {
            foreach (var (name, p) in model.named_parameters())
            {
                if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.fill_(1.0);
                else p.zero_();
            }
            var parameters = model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
            var embedding = parameters.Single(x => x.Key.EndsWith("embed_tokens.weight", StringComparison.Ordinal)).Value;
            var head = parameters.Single(x => x.Key.StartsWith("lm_head", StringComparison.Ordinal) && x.Key.EndsWith("weight", StringComparison.Ordinal)).Value;
            for (int v = 0; v < vocab; v++) embedding[v, v] = torch.tensor(1.0f);
            foreach (var (from, tos) in successors)
                foreach (char to in tos)
                    head[Id(to), Id(from)] = torch.tensor(3.0f);
        }
        return (model, tokenizer);
    }

    /// <summary>Successors that spell <paramref name="text"/> after <paramref name="start"/> and then end (characters must not repeat).</summary>
    public static Dictionary<char, string> Chain(char start, string text)
    {
        var map = new Dictionary<char, string>();
        char previous = start;
        foreach (char c in text)
        {
            map.Add(previous, c.ToString());
            previous = c;
        }
        map.Add(previous, End.ToString());
        return map;
    }
}
