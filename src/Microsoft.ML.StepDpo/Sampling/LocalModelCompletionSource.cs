using System.Threading.Channels;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Sampling;

/// <summary>
/// Continues partial solutions with a local Qwen2/Llama checkpoint (TorchSharp). Requests from concurrent callers
/// are queued and served by one generation thread, which packs the rows of waiting requests with the same sampling
/// settings into one batch (up to <c>maxBatchRows</c>), so problems processed in parallel share batched generation.
/// </summary>
/// <remarks>
/// The prompt is <c>template.Build(problem, prefix)</c>; generation stops at the end-of-sequence token, a stop
/// sequence, or <see cref="SamplingSettings.MaxNewTokens"/>. A batch is sampled with the seed of its first request,
/// so results are reproducible when requests arrive one at a time (one problem at a time), not when batches mix
/// requests of concurrent problems.
/// </remarks>
public sealed class LocalModelCompletionSource : ICompletionSource, IDisposable
{
    private sealed record Pending(CompletionRequest Request, TaskCompletionSource<IReadOnlyList<string>> Result, CancellationToken Token);

    private readonly Qwen2ForCausalLM _model;
    private readonly ITextTokenizer _tokenizer;
    private readonly bool _ownsModel;
    private readonly int _maxBatchRows;
    private readonly int[] _eosIds;
    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Thread _worker;
    private long _batches;

    internal LocalModelCompletionSource(Qwen2ForCausalLM model, ITextTokenizer tokenizer, PromptTemplate template, int maxBatchRows = 32, bool ownsModel = false)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        Template = template ?? throw new ArgumentNullException(nameof(template));
        if (maxBatchRows < 1) throw new ArgumentOutOfRangeException(nameof(maxBatchRows), maxBatchRows, "Must be at least 1.");
        _maxBatchRows = maxBatchRows;
        _ownsModel = ownsModel;
        _eosIds = new[] { tokenizer.EosId, model.Config.EosTokenId }.OfType<int>().Distinct().ToArray();
        _worker = new Thread(Serve) { IsBackground = true, Name = "StepDpo generation" };
        _worker.Start();
    }

    /// <summary>
    /// Loads a Hugging Face model folder (config.json, model.safetensors[.index.json], tokenizer.json) on the CPU; the
    /// overload taking an <see cref="MLContext"/> chooses the device.
    /// </summary>
    /// <param name="modelDirectory">The folder.</param>
    /// <param name="template">How the problem and the partial solution become the prompt.</param>
    /// <param name="maxBatchRows">Most sequences generated together. Default 32.</param>
    public static LocalModelCompletionSource Load(string modelDirectory, PromptTemplate template, int maxBatchRows = 32) =>
        Load(modelDirectory, template, maxBatchRows, device: null);

    /// <summary>
    /// Loads a Hugging Face model folder on the device the context chooses, as the trainers do: CUDA device
    /// <see cref="MLContext.GpuDeviceId"/> when set and a CUDA backend is loaded, else the CPU if
    /// <see cref="MLContext.FallbackToCpu"/> allows it, else an error.
    /// </summary>
    /// <param name="context">Chooses the device.</param>
    /// <param name="modelDirectory">The folder.</param>
    /// <param name="template">How the problem and the partial solution become the prompt.</param>
    /// <param name="maxBatchRows">Most sequences generated together. Default 32.</param>
    public static LocalModelCompletionSource Load(MLContext context, string modelDirectory, PromptTemplate template, int maxBatchRows = 32)
    {
        ArgumentNullException.ThrowIfNull(context);
        TorchRuntime.EnsureLoaded();
        return Load(modelDirectory, template, maxBatchRows, TorchDevice.Select(context));
    }

    private static LocalModelCompletionSource Load(string modelDirectory, PromptTemplate template, int maxBatchRows, TorchSharp.torch.Device? device)
    {
        if (string.IsNullOrEmpty(modelDirectory)) throw new ArgumentNullException(nameof(modelDirectory));
        TorchRuntime.EnsureLoaded();
        var (model, tokenizer) = ModelFolder.Load(modelDirectory, device: device);
        return new LocalModelCompletionSource(model, tokenizer, template, maxBatchRows, ownsModel: true);
    }

    /// <summary>The prompt format.</summary>
    public PromptTemplate Template { get; }

    /// <summary>Generation batches run so far.</summary>
    internal long Batches => Interlocked.Read(ref _batches);

    /// <inheritdoc/>
    public Task<IReadOnlyList<string>> CompleteAsync(CompletionRequest request, CancellationToken cancellationToken = default)
    {
        if (request is null) throw new ArgumentNullException(nameof(request));
        request.Validate();
        var pending = new Pending(request, new TaskCompletionSource<IReadOnlyList<string>>(TaskCreationOptions.RunContinuationsAsynchronously), cancellationToken);
        if (!_queue.Writer.TryWrite(pending))
            throw new ObjectDisposedException(nameof(LocalModelCompletionSource));
        return pending.Result.Task;
    }

    private void Serve()
    {
        var reader = _queue.Reader;
        Pending? carry = null;
        while (true)
        {
            Pending? first = carry;
            carry = null;
            if (first is null)
            {
                if (!reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult()) return;
                if (!reader.TryRead(out first)) continue;
            }

            // Pack waiting requests with the same settings, up to the row budget.
            var batch = new List<Pending> { first };
            int rows = first.Request.Count;
            while (rows < _maxBatchRows && reader.TryRead(out var next))
            {
                if (next.Request.Settings.BatchKey != first.Request.Settings.BatchKey || rows + next.Request.Count > _maxBatchRows)
                {
                    carry = next;
                    break;
                }
                batch.Add(next);
                rows += next.Request.Count;
            }
            Run(batch);
        }
    }

    private void Run(List<Pending> batch)
    {
        batch.RemoveAll(p =>
        {
            if (!p.Token.IsCancellationRequested) return false;
            p.Result.TrySetCanceled(p.Token);
            return true;
        });
        if (batch.Count == 0) return;
        try
        {
            var settings = batch[0].Request.Settings;
            var prompts = new List<int[]>();
            int context = _model.Config.MaxPositionEmbeddings;
            foreach (var p in batch.ToList())
            {
                var ids = _tokenizer.Encode(Template.Build(p.Request.Problem, p.Request.Prefix));
                if (ids.Length == 0) throw new InvalidOperationException("The prompt encodes to no tokens.");
                if (ids.Length >= context)
                {
                    // A prompt that does not fit the context fails alone, not the requests it was batched with.
                    p.Result.TrySetException(new ContextLengthExceededException(ids.Length, context));
                    batch.Remove(p);
                    continue;
                }
                prompts.AddRange(Enumerable.Repeat(ids, p.Request.Count));
            }
            if (batch.Count == 0) return;

            var options = new GenerationOptions
            {
                MaxNewTokens = settings.MaxNewTokens,
                Temperature = settings.Temperature,
                TopP = settings.TopP,
                EosIds = _eosIds,
                StopStrings = settings.StopSequences,
            };
            var generator = new TextGenerator(_model, ids => _tokenizer.Decode(ids));
            var texts = new List<string>(prompts.Count);
            // A single request larger than the row budget is generated in chunks.
            for (int start = 0, chunk = 0; start < prompts.Count; start += _maxBatchRows, chunk++)
            {
                var part = prompts.Skip(start).Take(_maxBatchRows).ToList();
                var results = generator.Generate(part, options with { Seed = settings.Seed + chunk });
                texts.AddRange(results.Select(r => r.Text ?? string.Empty));
                Interlocked.Increment(ref _batches);
            }

            int at = 0;
            foreach (var p in batch)
            {
                p.Result.TrySetResult(texts.GetRange(at, p.Request.Count));
                at += p.Request.Count;
            }
        }
        catch (Exception e)
        {
            foreach (var p in batch)
                p.Result.TrySetException(e);
        }
    }

    /// <summary>Stops the generation thread (waiting requests fail) and releases the model if this source loaded it.</summary>
    public void Dispose()
    {
        if (!_queue.Writer.TryComplete()) return;
        _worker.Join();
        while (_queue.Reader.TryRead(out var p))
            p.Result.TrySetException(new ObjectDisposedException(nameof(LocalModelCompletionSource)));
        if (_ownsModel) _model.Dispose();
    }
}
