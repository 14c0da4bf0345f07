using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Sampling;
using Microsoft.ML.StepDpo.Text;

namespace StepDpo.Tools.Sampling;

/// <summary>
/// The baseline of the sampling benchmark: <c>LocalModelCompletionSource</c> as it was before batch-invariant
/// sampling (revision 76b8135), kept here so that the old and the new path run in the same process. One generation
/// thread packs waiting requests with the same settings into a batch (up to maxBatchRows) and runs
/// <see cref="TextGenerator"/> on it to the end, seeded with the first request's seed; the thread uses torch's
/// default thread count, as the old source did. Instrumented: <see cref="Stats"/>.
/// </summary>
internal sealed class LegacyCompletionSource : ICompletionSource, IDisposable
{
    private sealed record Pending(CompletionRequest Request, TaskCompletionSource<IReadOnlyList<string>> Result, CancellationToken Token);

    private readonly Qwen2ForCausalLM _model;
    private readonly ITextTokenizer _tokenizer;
    private readonly PromptTemplate _template;
    private readonly int _maxBatchRows;
    private readonly int[] _eosIds;
    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Thread _worker;
    private readonly int _workerThreads;

    public LegacyCompletionSource(Qwen2ForCausalLM model, ITextTokenizer tokenizer, PromptTemplate template, int maxBatchRows, int workerThreads = 0)
    {
        _workerThreads = workerThreads;
        _model = model;
        _tokenizer = tokenizer;
        _template = template;
        _maxBatchRows = maxBatchRows;
        _eosIds = new[] { tokenizer.EosId, model.Config.EosTokenId }.OfType<int>().Distinct().ToArray();
        _worker = new Thread(Serve) { IsBackground = true, Name = "legacy generation" };
        _worker.Start();
    }

    /// <summary>Where the generation thread's time went.</summary>
    public GenerationStats Stats { get; } = new();

    public Task<IReadOnlyList<string>> CompleteAsync(CompletionRequest request, CancellationToken cancellationToken = default)
    {
        var pending = new Pending(request, new TaskCompletionSource<IReadOnlyList<string>>(TaskCreationOptions.RunContinuationsAsynchronously), cancellationToken);
        if (!_queue.Writer.TryWrite(pending)) throw new ObjectDisposedException(nameof(LegacyCompletionSource));
        return pending.Result.Task;
    }

    private void Serve()
    {
        if (_workerThreads > 0) TorchSharp.torch.set_num_threads(_workerThreads);
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
        long start = Stopwatch.GetTimestamp();
        try
        {
            var settings = batch[0].Request.Settings;
            var prompts = new List<int[]>();
            foreach (var p in batch)
            {
                var ids = _tokenizer.Encode(_template.Build(p.Request.Problem, p.Request.Prefix));
                prompts.AddRange(Enumerable.Repeat(ids, p.Request.Count));
            }
            long tokenized = Stopwatch.GetTimestamp();
            Stats.Add(ref Stats.TokenizeTicks, tokenized - start);
            var generator = new TextGenerator(_model, ids => _tokenizer.Decode(ids));
            var texts = new List<string>(prompts.Count);
            for (int at = 0, chunk = 0; at < prompts.Count; at += _maxBatchRows, chunk++)
            {
                var part = prompts.Skip(at).Take(_maxBatchRows).ToList();
                long begin = Stopwatch.GetTimestamp(), firstToken = 0, lastToken = 0;
                var results = generator.Generate(part, new GenerationOptions
                {
                    MaxNewTokens = settings.MaxNewTokens, Temperature = settings.Temperature, TopP = settings.TopP, EosIds = _eosIds,
                    StopStrings = settings.StopSequences, Seed = settings.Seed + chunk,
                    OnToken = (row, _) =>
                    {
                        if (row != 0) return;
                        lastToken = Stopwatch.GetTimestamp();
                        if (firstToken == 0) firstToken = lastToken;
                    },
                });
                long end = Stopwatch.GetTimestamp();
                int steps = results.Max(r => r.Tokens.Length);
                Stats.Add(ref Stats.PrefillTicks, firstToken - begin);
                Stats.Add(ref Stats.DecodeTicks, end - firstToken);
                Stats.Add(ref Stats.Batches, 1);
                Stats.Add(ref Stats.Rows, part.Count);
                Stats.Add(ref Stats.PromptTokens, part.Sum(p => (long)p.Length));
                Stats.Add(ref Stats.RowSteps, (long)part.Count * steps);
                Stats.Add(ref Stats.Tokens, results.Sum(r => (long)r.Tokens.Length));
                texts.AddRange(results.Select(r => r.Text ?? string.Empty));
            }
            int taken = 0;
            foreach (var p in batch)
            {
                p.Result.TrySetResult(texts.GetRange(taken, p.Request.Count));
                taken += p.Request.Count;
            }
        }
        catch (Exception e)
        {
            foreach (var p in batch) p.Result.TrySetException(e);
        }
        finally
        {
            Stats.Add(ref Stats.BusyTicks, Stopwatch.GetTimestamp() - start);
        }
    }

    public void Dispose()
    {
        if (!_queue.Writer.TryComplete()) return;
        _worker.Join();
    }
}
