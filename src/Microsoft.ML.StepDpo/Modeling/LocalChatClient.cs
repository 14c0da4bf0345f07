using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.AI;
using Microsoft.ML.StepDpo.Modeling.Tokenization;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// A local TorchSharp causal LM as a Microsoft.Extensions.AI <see cref="IChatClient"/>: messages are rendered
/// with a chat template (Qwen's ChatML by default), the reply is sampled with the KV-cache generator and stops
/// at the template's end-of-turn marker or EOS. Honours ChatOptions Temperature, TopP, TopK, MaxOutputTokens,
/// Seed and StopSequences. Calls are serialized (one generation at a time).
/// </summary>
public sealed class LocalChatClient : IChatClient
{
    private readonly Qwen2ForCausalLM _model;
    private readonly ByteLevelBpeTokenizer _tokenizer;
    private readonly Func<IEnumerable<ChatMessage>, string> _template;
    private readonly string _endOfTurn;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly string _modelId;

    internal LocalChatClient(Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer, string modelId,
        Func<IEnumerable<ChatMessage>, string>? template = null, string endOfTurn = "<|im_end|>")
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        _template = template ?? ChatMl;
        _endOfTurn = endOfTurn;
        _modelId = modelId;
    }

    /// <summary>Loads a Hugging Face folder (config.json, safetensors, tokenizer.json) on the CPU as a chat client with the ChatML template.</summary>
    public static LocalChatClient Load(string modelDirectory) => Load(modelDirectory, null, ChatMl, "<|im_end|>");

    /// <summary>
    /// Loads a Hugging Face folder as a chat client with the ChatML template, on the device the context chooses, as the
    /// trainers do: CUDA device <see cref="MLContext.GpuDeviceId"/> when set and a CUDA backend is loaded, else the CPU if
    /// <see cref="MLContext.FallbackToCpu"/> allows it, else an error.
    /// </summary>
    /// <param name="context">Chooses the device.</param>
    /// <param name="modelDirectory">The folder (config.json, safetensors, tokenizer.json).</param>
    public static LocalChatClient Load(MLContext context, string modelDirectory) => Load(context, modelDirectory, ChatMl, "<|im_end|>");

    /// <summary>
    /// Loads a Hugging Face folder as a chat client with your own rendering of the messages, on the device the context
    /// chooses (see <see cref="Load(MLContext, string)"/>).
    /// </summary>
    /// <param name="context">Chooses the device.</param>
    /// <param name="modelDirectory">The folder (config.json, safetensors, tokenizer.json).</param>
    /// <param name="template">Renders the conversation into the prompt text.</param>
    /// <param name="endOfTurn">Text that ends the reply (cut from it); null or empty to stop at EOS, a stop sequence or the token limit only.</param>
    public static LocalChatClient Load(MLContext context, string modelDirectory, Func<IEnumerable<ChatMessage>, string> template, string? endOfTurn)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(template);
        TorchRuntime.EnsureLoaded();
        return Load(modelDirectory, TorchDevice.Select(context), template, endOfTurn);
    }

    /// <summary>
    /// Loads a Hugging Face folder as a chat client with your own rendering of the messages, for example
    /// <c>messages =&gt; string.Concat(messages.Select(m =&gt; m.Text))</c> to continue a plain text prompt.
    /// </summary>
    /// <param name="modelDirectory">The folder (config.json, safetensors, tokenizer.json).</param>
    /// <param name="template">Renders the conversation into the prompt text.</param>
    /// <param name="endOfTurn">Text that ends the reply (cut from it); null or empty to stop at EOS, a stop sequence or the token limit only.</param>
    public static LocalChatClient Load(string modelDirectory, Func<IEnumerable<ChatMessage>, string> template, string? endOfTurn)
    {
        ArgumentNullException.ThrowIfNull(template);
        return Load(modelDirectory, null, template, endOfTurn);
    }

    private static LocalChatClient Load(string modelDirectory, TorchSharp.torch.Device? device, Func<IEnumerable<ChatMessage>, string> template, string? endOfTurn)
    {
        if (string.IsNullOrEmpty(modelDirectory)) throw new ArgumentNullException(nameof(modelDirectory));
        if (!Directory.Exists(modelDirectory)) throw new DirectoryNotFoundException($"Model folder '{modelDirectory}' does not exist.");
        TorchRuntime.EnsureLoaded();
        var (model, tokenizer) = ModelFolder.Load(modelDirectory, device: device);
        return new LocalChatClient(model, tokenizer, Path.GetFileName(Path.GetFullPath(modelDirectory)), template, endOfTurn ?? "");
    }

    /// <summary>Qwen's ChatML rendering, ending with the assistant header (a default system turn as Qwen2 uses).</summary>
    public static string ChatMl(IEnumerable<ChatMessage> messages)
    {
        var list = messages.ToList();
        var sb = new StringBuilder();
        if (list.Count == 0 || list[0].Role != ChatRole.System)
            sb.Append("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n");
        foreach (var m in list)
            sb.Append("<|im_start|>").Append(m.Role.Value).Append('\n').Append(m.Text).Append("<|im_end|>\n");
        sb.Append("<|im_start|>assistant\n");
        return sb.ToString();
    }

    private GenerationOptions Options(ChatOptions? o, Action<int, int>? onToken)
    {
        var stops = new List<string>();
        if (_endOfTurn.Length > 0) stops.Add(_endOfTurn);
        if (o?.StopSequences is { } extra) stops.AddRange(extra.Where(s => !string.IsNullOrEmpty(s)));
        return new GenerationOptions
        {
            MaxNewTokens = o?.MaxOutputTokens ?? 512,
            Temperature = o?.Temperature ?? 0,
            TopP = o?.TopP is float p && p > 0 ? p : 1.0,
            TopK = o?.TopK ?? 0,
            Seed = o?.Seed ?? 0,
            StopStrings = stops,
            EosIds = new[] { _tokenizer.EosId, _model.Config.EosTokenId }.OfType<int>().Distinct().ToArray(),
            OnToken = onToken,
        };
    }

    private string Decode(int[] ids) => _tokenizer.Decode(ids, skipSpecialTokens: false);

    /// <inheritdoc/>
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var prompt = ((ITextTokenizer)_tokenizer).Encode(_template(messages));
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var result = await Task.Run(() => new TextGenerator(_model, Decode).Generate(prompt, Options(options, null)), cancellationToken).ConfigureAwait(false);
            var text = result.Text ?? "";
            var finish = result.Reason == StopReason.MaxTokens ? ChatFinishReason.Length : ChatFinishReason.Stop;
            return new ChatResponse(new ChatMessage(ChatRole.Assistant, text)) { ModelId = _modelId, FinishReason = finish };
        }
        finally { _gate.Release(); }
    }

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var prompt = ((ITextTokenizer)_tokenizer).Encode(_template(messages));
        var channel = Channel.CreateUnbounded<string>();
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Emit text as it becomes stable: decode the generated ids so far and send what is new.
            var ids = new List<int>();
            int sent = 0;
            var genOptions = Options(options, null);
            var eos = genOptions.EosIds.ToHashSet();
            var generation = Task.Run(() =>
            {
                try
                {
                    var result = new TextGenerator(_model, Decode).Generate(prompt, genOptions with { OnToken = (_, id) =>
                    {
                        if (eos.Contains(id)) return; // EOS is not part of the reply
                        ids.Add(id);
                        var text = Decode(ids.ToArray());
                        int cut = _endOfTurn.Length == 0 ? -1 : text.IndexOf(_endOfTurn, StringComparison.Ordinal);
                        if (cut >= 0) text = text[..cut];
                        int hold = HeldBack(text);
                        if (text.Length - hold > sent && !text.EndsWith('\uFFFD'))
                        {
                            channel.Writer.TryWrite(text[sent..^hold]);
                            sent = text.Length - hold;
                        }
                    } });
                    var final = result.Text ?? "";
                    if (final.Length > sent) channel.Writer.TryWrite(final[sent..]);
                    channel.Writer.TryComplete();
                }
                catch (Exception e) { channel.Writer.TryComplete(e); }
            }, cancellationToken);
            await foreach (var piece in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ModelId = _modelId };
            await generation.ConfigureAwait(false);
        }
        finally { _gate.Release(); }
    }

    /// <summary>Characters at the end of <paramref name="text"/> that might be the start of the end-of-turn marker.</summary>
    private int HeldBack(string text)
    {
        for (int n = Math.Min(_endOfTurn.Length - 1, text.Length); n > 0; n--)
            if (text.EndsWith(_endOfTurn[..n], StringComparison.Ordinal)) return n;
        return 0;
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    /// <inheritdoc/>
    public void Dispose()
    {
        _model.Dispose();
        _gate.Dispose();
    }
}
