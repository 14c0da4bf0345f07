using System.Threading.Channels;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Sampling;

/// <summary>
/// Continues partial solutions with a local Qwen2/Llama checkpoint (TorchSharp). Requests from concurrent callers are
/// queued and served by one generation thread with continuous batching: their rows join the running batch whenever
/// rows are free (up to <c>maxBatchRows</c>) and leave it as soon as they stop, so problems processed in parallel share
/// batched generation, and the rows of one request share one prefill of its prompt.
/// </summary>
/// <remarks>
/// The prompt is <c>template.Build(problem, prefix)</c>; generation stops at the end-of-sequence token, a stop
/// sequence, or <see cref="SamplingSettings.MaxNewTokens"/>. Each row draws its tokens from its own random stream,
/// a function of the request's <see cref="SamplingSettings.Seed"/>, the row's index within the request and the
/// token's position, so a request's continuations do not depend on which other requests share its batch, in what
/// order they came, or on <c>maxBatchRows</c>: the same request gives the same continuations alone or among others, up
/// to floating-point rounding that batch shapes can change (none in float64; in float32 or bfloat16 a token whose
/// draw lies within rounding of a boundary between two tokens may rarely differ).
/// </remarks>
public sealed class LocalModelCompletionSource : ICompletionSource, IDisposable
{
    private sealed class Pending(CompletionRequest request, CancellationToken token)
    {
        public CompletionRequest Request { get; } = request;
        public CancellationToken Token { get; } = token;
        public TaskCompletionSource<IReadOnlyList<string>> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int[]? Prompt;
        public int Admitted;                         // rows handed to the generator so far
        public string[] Texts = Array.Empty<string>();
        public int Remaining;                        // rows not finished yet
    }

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
    /// <param name="maxBatchRows">Most sequences generated together (the batch's rows). Default 32.</param>
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
    /// <param name="maxBatchRows">Most sequences generated together (the batch's rows). Default 32.</param>
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

    /// <summary>Prefill passes so far (groups of rows that joined the batch together).</summary>
    internal long Batches => Interlocked.Read(ref _batches);

    /// <summary>Counters of the generator (prefills, steps, rows per step), read after a run; for benchmarks.</summary>
    internal ContinuousBatchGenerator? Generator { get; private set; }

    /// <inheritdoc/>
    public Task<IReadOnlyList<string>> CompleteAsync(CompletionRequest request, CancellationToken cancellationToken = default)
    {
        if (request is null) throw new ArgumentNullException(nameof(request));
        request.Validate();
        var pending = new Pending(request, cancellationToken);
        if (!_queue.Writer.TryWrite(pending))
            throw new ObjectDisposedException(nameof(LocalModelCompletionSource));
        return pending.Result.Task;
    }

    private void Serve()
    {
        var reader = _queue.Reader;
        var generator = Generator = new ContinuousBatchGenerator(_model, ids => _tokenizer.Decode(ids), _eosIds, _maxBatchRows);
        var waiting = new Queue<Pending>();   // requests with rows not yet in the batch, in arrival order
        try
        {
            while (true)
            {
                while (reader.TryRead(out var arrived)) Arrive(arrived, waiting);
                if (generator.Live == 0 && waiting.Count == 0)
                {
                    if (!reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult()) return;
                    continue;
                }
                try
                {
                    // Rows of cancelled requests leave the batch.
                    if (generator.Remove(row => Ended((Pending)row.Tag!)) > 0) InFlight.RemoveWhere(p => p.Result.Task.IsCompleted);
                    // Waiting rows join once a sixteenth of the batch is free (or it is less than half full): fewer,
                    // larger prefills, whose prompts run side by side. Which rows share a step does not change what they
                    // generate (see the remarks).
                    if (waiting.Count > 0 && (generator.FreeRows >= Math.Max(1, _maxBatchRows / 16) || generator.Live < _maxBatchRows / 2))
                    {
                        var rows = Take(waiting, generator.FreeRows);
                        if (rows.Count > 0)
                        {
                            Deliver(generator.Admit(rows));
                            Interlocked.Increment(ref _batches);
                        }
                    }
                    if (generator.Live > 0) Deliver(generator.Step());
                }
                catch (Exception e)
                {
                    // A failure of the batch fails every request with rows in it; the others go on.
                    foreach (var p in InFlight) p.Result.TrySetException(e);
                    InFlight.Clear();
                    generator.Clear();
                }
            }
        }
        finally
        {
            generator.Dispose();
        }
    }

    // Requests with rows in the batch (failed together if the batch fails).
    private HashSet<Pending> InFlight { get; } = new();

    /// <summary>Checks and tokenizes an arrived request; a request that cannot run fails alone.</summary>
    private void Arrive(Pending p, Queue<Pending> waiting)
    {
        if (p.Token.IsCancellationRequested) { p.Result.TrySetCanceled(p.Token); return; }
        try
        {
            var ids = _tokenizer.Encode(Template.Build(p.Request.Problem, p.Request.Prefix));
            if (ids.Length == 0) throw new InvalidOperationException("The prompt encodes to no tokens.");
            int context = _model.Config.MaxPositionEmbeddings;
            if (ids.Length >= context)
                throw new ContextLengthExceededException(ids.Length, context); // fails this request alone (caught below)
            p.Prompt = ids;
            p.Texts = new string[p.Request.Count];
            p.Remaining = p.Request.Count;
            waiting.Enqueue(p);
        }
        catch (Exception e)
        {
            p.Result.TrySetException(e);
        }
    }

    /// <summary>Up to <paramref name="free"/> rows of the waiting requests, oldest first (a request may join in parts).</summary>
    private List<GenerationRow> Take(Queue<Pending> waiting, int free)
    {
        var rows = new List<GenerationRow>();
        while (rows.Count < free && waiting.TryPeek(out var p))
        {
            if (Ended(p)) { waiting.Dequeue(); continue; }
            var s = p.Request.Settings;
            while (rows.Count < free && p.Admitted < p.Request.Count)
                rows.Add(new GenerationRow(p.Prompt!, s.Temperature, s.TopP, s.MaxNewTokens, s.StopSequences, s.Seed, p.Admitted++, p));
            InFlight.Add(p);
            if (p.Admitted == p.Request.Count) waiting.Dequeue();
        }
        return rows;
    }

    /// <summary>Whether a request no longer needs rows: it failed, or its caller cancelled it (then it is marked so).</summary>
    private static bool Ended(Pending p)
    {
        if (p.Token.IsCancellationRequested) p.Result.TrySetCanceled(p.Token);
        return p.Result.Task.IsCompleted;
    }

    private void Deliver(IReadOnlyList<(GenerationRow Row, GenerationResult Result)> finished)
    {
        foreach (var (row, result) in finished)
        {
            var p = (Pending)row.Tag!;
            p.Texts[row.Row] = result.Text ?? string.Empty;
            if (--p.Remaining > 0) continue;
            InFlight.Remove(p);
            if (p.Token.IsCancellationRequested) p.Result.TrySetCanceled(p.Token);
            else p.Result.TrySetResult(p.Texts);
        }
    }

    /// <summary>Stops the generation thread (waiting requests fail) and releases the model if this source loaded it.</summary>
    public void Dispose()
    {
        if (!_queue.Writer.TryComplete()) return;
        _worker.Join();
        foreach (var p in InFlight) p.Result.TrySetException(new ObjectDisposedException(nameof(LocalModelCompletionSource)));
        while (_queue.Reader.TryRead(out var p))
            p.Result.TrySetException(new ObjectDisposedException(nameof(LocalModelCompletionSource)));
        if (_ownsModel) _model.Dispose();
    }
}
