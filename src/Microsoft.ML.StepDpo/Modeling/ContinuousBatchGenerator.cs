using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>One sequence for <see cref="ContinuousBatchGenerator"/>: its prompt, how to sample it, and its random stream.</summary>
/// <param name="Prompt">Prompt ids (rows with equal prompts are prefilled once).</param>
/// <param name="Temperature">0 is greedy.</param>
/// <param name="TopP">Nucleus threshold in (0, 1].</param>
/// <param name="MaxNewTokens">Most tokens generated (fewer where the prompt nearly fills the model's context).</param>
/// <param name="StopStrings">Generation stops once the text contains one (it is cut off the result).</param>
/// <param name="Seed">With <paramref name="Row"/>, the sequence's random stream (<see cref="RowRandom"/>).</param>
/// <param name="Row">The sequence's index within its request.</param>
/// <param name="Tag">The caller's: handed back with the result.</param>
internal sealed record GenerationRow(int[] Prompt, double Temperature, double TopP, int MaxNewTokens, IReadOnlyList<string> StopStrings,
    long Seed, int Row, object? Tag = null);

/// <summary>
/// Continuous batching: sequences join the running batch whenever rows are free (<see cref="Admit"/>) and leave it
/// as soon as they stop, and every <see cref="Step"/> generates one token for each live sequence. Each sequence is
/// sampled from its own random stream with its own settings (<see cref="RowSampler"/>), and its keys and values live
/// in its own row of a <see cref="SlotKvCache"/> with its own positions and mask, so its result is what it gets
/// generated alone — the same token for token at temperature 0 as <see cref="TextGenerator"/> one prompt at a time
/// (up to floating-point rounding that batch shapes can change). Work a batch can share is done once: sequences admitted
/// together with equal prompts share one prefill (and, with <see cref="SlotAttention"/>, one stored copy of it), and a
/// prompt that begins with a recently prefilled one runs only its rest (<see cref="PromptPrefixPool"/>).
/// </summary>
internal sealed class ContinuousBatchGenerator : IDisposable
{
    private sealed class Sequence(GenerationRow job, int promptLength, int maxNew, StopStringScan? stops)
    {
        public GenerationRow Job { get; } = job;
        public int PromptLength { get; } = promptLength;
        public int MaxNew { get; } = maxNew;
        public StopStringScan? Stops { get; } = stops;
        public List<int> Tokens { get; } = new();
        public long Write;   // slot of the next token's keys and values (its cache row holds the sequence from slot 0)
        public int Slot;     // its cache row
        // The sequence whose cache row holds this one's prompt (itself, unless the prompt is stored once for several).
        public Sequence Owner = null!;
    }

    private readonly Qwen2ForCausalLM model;
    private readonly Func<int[], string>? decode;
    private readonly HashSet<int> eos;
    private readonly List<Sequence> live = new();
    private readonly bool sharePrompts;
    private SlotKvCache? cache;
    private PromptPrefixPool? pool;
    private FusedDecoder? fused;   // the forward pass in C# where it serves the model (rebuilt whenever the batch ran empty)

    /// <param name="model">The model to sample from.</param>
    /// <param name="decode">Ids to text; needed for stop strings and results' text.</param>
    /// <param name="eosIds">End-of-sequence ids.</param>
    /// <param name="maxRows">Most sequences generated together.</param>
    public ContinuousBatchGenerator(Qwen2ForCausalLM model, Func<int[], string>? decode, IEnumerable<int> eosIds, int maxRows)
    {
        if (maxRows < 1) throw new ArgumentOutOfRangeException(nameof(maxRows), maxRows, "Must be at least 1.");
        this.model = model ?? throw new ArgumentNullException(nameof(model));
        this.decode = decode;
        eos = eosIds.ToHashSet();
        MaxRows = maxRows;
        // Where decoding attention is SlotAttention, sequences that joined together with the same prompt read its keys
        // and values from one cache row; SDPA needs every row to hold its whole sequence (a copy per row).
        sharePrompts = SlotAttention.AppliesTo(model.DType, model.Device);
    }

    public int MaxRows { get; }

    /// <summary>Most prompt tokens (rows × padded length) in one prefill pass.</summary>
    internal int MaxPrefillTokens { get; init; } = 16384;

    /// <summary>Sequences being generated.</summary>
    public int Live => live.Count;

    /// <summary>Sequences that can still join.</summary>
    public int FreeRows => MaxRows - live.Count;

    /// <summary>Admissions so far (each runs one or more prefill passes).</summary>
    public long Prefills { get; private set; }

    /// <summary>Prompt tokens run through the model so far (once per distinct prompt of a pass, and only past a pooled prefix).</summary>
    public long PrefillTokens { get; private set; }

    /// <summary>Prompt tokens whose keys and values came from the prefix pool instead.</summary>
    public long ReusedTokens { get; private set; }

    /// <summary>Whether prompts that begin with a recently prefilled prompt reuse its keys and values (<see cref="PromptPrefixPool"/>). Default true.</summary>
    internal bool ReusePrefixes { get; init; } = true;

    /// <summary>Decoding steps so far, and the sequences they carried.</summary>
    public long Steps { get; private set; }

    public long RowSteps { get; private set; }

    /// <summary>Time spent in <see cref="Admit"/> (prefills) and in <see cref="Step"/>.</summary>
    public TimeSpan AdmitTime { get; private set; }

    public TimeSpan StepTime { get; private set; }

    /// <summary>Of <see cref="StepTime"/>, the model's forward passes.</summary>
    public TimeSpan ForwardTime { get; private set; }

    /// <summary>Of <see cref="StepTime"/>, the time from the logits to the tokens on the CPU (sampling).</summary>
    public TimeSpan SampleTime { get; private set; }

    /// <summary>
    /// Adds sequences to the batch: their distinct prompts are prefilled in one pass and each samples its first token.
    /// Returns those that already stopped (an end-of-sequence first token, one new token allowed).
    /// </summary>
    public IReadOnlyList<(GenerationRow Row, GenerationResult Result)> Admit(IReadOnlyList<GenerationRow> rows)
    {
        if (rows.Count > FreeRows) throw new ArgumentException($"{rows.Count} sequences, {FreeRows} free rows.", nameof(rows));
        long started = Stopwatch.GetTimestamp();
        try { return AdmitRows(rows); }
        finally { AdmitTime += Stopwatch.GetElapsedTime(started); }
    }

    private IReadOnlyList<(GenerationRow Row, GenerationResult Result)> AdmitRows(IReadOnlyList<GenerationRow> rows)
    {
        var finished = new List<(GenerationRow, GenerationResult)>();
        if (rows.Count == 0) return finished;
        int context = model.Config.MaxPositionEmbeddings;
        foreach (var r in rows)
        {
            if (r.Prompt is null || r.Prompt.Length == 0) throw new ArgumentException("Every prompt needs at least one token.", nameof(rows));
            if (r.Prompt.Length >= context)
                throw new ArgumentException(
                    $"A prompt is {r.Prompt.Length} tokens; the model's context (max_position_embeddings) is {context}. Shorten the problem or use a model with a longer context.",
                    nameof(rows));
            if (r.MaxNewTokens < 1 || r.Temperature < 0 || r.TopP is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(rows), "Invalid sampling settings.");
            if (r.StopStrings.Count > 0 && decode is null) throw new InvalidOperationException("Stop strings need a decode function.");
        }

        // Sequences that joined earlier leave their prompts in the prefix pool, unless the batch ran empty since (the
        // model may have changed in between).
        if (live.Count == 0)
        {
            pool?.Clear();
            fused?.Dispose();
            fused = sharePrompts && FusedDecoder.AppliesTo(model) ? new FusedDecoder(model) { Threads = DecoderThreads } : null;
        }

        // Distinct prompts first (each prefilled once, in rows first..first+U-1), then the rows that share one. Prompts
        // that begin with a pooled prompt come last, ordered by what remains to run; the others longest first.
        var distinct = rows.GroupBy(r => r.Prompt, PromptComparer.Instance)
            .Select(g => (Rows: g.ToList(), Found: ReusePrefixes && pool is not null ? pool.Find(g.Key) : (Entry: -1, Shared: 0)))
            .ToList();
        var groups = distinct.Where(g => g.Found.Shared == 0).OrderByDescending(g => g.Rows[0].Prompt.Length)
            .Concat(distinct.Where(g => g.Found.Shared > 0).OrderByDescending(g => g.Rows[0].Prompt.Length - g.Found.Shared))
            .ToList();
        var joining = new List<(GenerationRow Row, int Group)>();
        for (int g = 0; g < groups.Count; g++) joining.Add((groups[g].Rows[0], g));
        for (int g = 0; g < groups.Count; g++) joining.AddRange(groups[g].Rows.Skip(1).Select(x => (x, g)));

        int U = groups.Count, P = groups.Max(g => g.Rows[0].Prompt.Length), first = live.Count;
        int Remaining(int g) => groups[g].Rows[0].Prompt.Length - groups[g].Found.Shared;
        // Passes of prompts of similar length to run (each padded to its longest) and at most MaxPrefillTokens tokens
        // (attention scores grow with rows × length²); a pass never mixes pooled and unpooled prompts.
        var passes = new List<(int First, int Count, int Tokens)>();
        for (int g0 = 0; g0 < U;)
        {
            int longest = Remaining(g0), count = 1;
            bool pooled = groups[g0].Found.Shared > 0;
            while (g0 + count < U && (groups[g0 + count].Found.Shared > 0) == pooled && (count + 1) * longest <= MaxPrefillTokens
                   && Remaining(g0 + count) * 5 >= longest * 4)
                count++;
            passes.Add((g0, count, longest));
            g0 += count;
        }
        int MaxNew(GenerationRow r) => Math.Min(r.MaxNewTokens, context - r.Prompt.Length);
        // Slots a pass writes: a pooled prompt's padding lies after its shared prefix.
        long written = passes.Max(p => Enumerable.Range(p.First, p.Count).Max(g => (long)groups[g].Found.Shared) + p.Tokens);
        EnsureCache(Math.Max(P, written) + rows.Max(MaxNew));

        using var mode = new InferenceMode(model, first + joining.Count);
        using var scope = torch.NewDisposeScope();
        var device = model.Device;
        var lastLogits = new List<Tensor>();
        if (fused is not null)
        {
            // Every distinct prompt in one pass of the fused decoder (each runs at its own length; a pooled prompt runs its rest).
            var runs = new List<DecodeRun>();
            for (int g = 0; g < U; g++)
            {
                var prompt = groups[g].Rows[0].Prompt;
                int shared = groups[g].Found.Shared;
                if (shared > 0) pool!.Load(groups[g].Found.Entry, shared, cache!, first + g);
                runs.Add(new DecodeRun(prompt, shared, prompt.Length - shared, shared, first + g, first + g, 0));
            }
            lastLogits.Add(fused.Run(runs, cache!));
        }
        else
        {
            foreach (var (g0, count, tokens) in passes)
            {
                var prompts = groups.Skip(g0).Take(count).Select(g => g.Rows[0].Prompt).ToList();
                if (groups[g0].Found.Shared == 0)
                {
                    cache!.PrepareBlock(first + g0, count);
                    lastLogits.Add(Prefill(prompts, tokens));
                }
                else
                {
                    var shared = groups.Skip(g0).Take(count).Select(g => g.Found.Shared).ToArray();
                    for (int i = 0; i < count; i++) pool!.Load(groups[g0 + i].Found.Entry, shared[i], cache!, first + g0 + i);
                    lastLogits.Add(PrefillAfter(prompts, shared, first + g0, tokens));
                }
            }
        }
        Prefills++;
        PrefillTokens += Enumerable.Range(0, U).Sum(g => (long)Remaining(g));
        ReusedTokens += groups.Sum(g => (long)g.Found.Shared);
        if (ReusePrefixes)
        {
            pool ??= new PromptPrefixPool(model.Config, MaxRows, model.DType, model.Device);
            for (int g = 0; g < U; g++) pool.Store(groups[g].Rows[0].Prompt, cache!, first + g);
        }

        // Rows sharing a prompt read it from the row it was prefilled in, or (for SDPA) get a copy; every row samples
        // its own first token.
        if (!sharePrompts)
        {
            var from = new List<long>();
            var to = new List<long>();
            for (int i = U; i < joining.Count; i++)
            {
                from.Add(first + joining[i].Group);
                to.Add(first + i);
            }
            cache!.CopyRows(from.ToArray(), to.ToArray(), P);
        }
        var rowLogits = torch.cat(lastLogits, 0).index(new[] { torch.tensor(joining.Select(j => (long)j.Group).ToArray(), device: device) });   // = index_select(0, ·), which meta lacks
        var jobs = joining.Select(j => j.Row).ToList();
        var next = Sample(rowLogits, jobs, jobs.Select(_ => 0L).ToList());

        for (int i = 0; i < joining.Count; i++)
        {
            var r = joining[i].Row;
            var s = new Sequence(r, r.Prompt.Length, MaxNew(r), r.StopStrings.Count > 0 ? new StopStringScan(r.StopStrings, decode!) : null)
            {
                Write = r.Prompt.Length,
                Slot = first + i,
            };
            s.Owner = sharePrompts && i >= U ? live[first + joining[i].Group] : s;
            live.Add(s);
        }
        var done = new List<int>();
        for (int i = 0; i < joining.Count; i++)
            if (Accept(live[first + i], next[i]) is { } result) { finished.Add((live[first + i].Job, result)); done.Add(first + i); }
        RemoveRows(done);
        return finished;
    }

    /// <summary>
    /// Runs <paramref name="prompts"/>, right-padded to <paramref name="P"/>, through the model into the prepared cache
    /// rows with plain causal attention (a prompt's tokens never see the padding after them; the padding's keys are
    /// masked out of every later step and overwritten by the generated tokens); returns the logits [U, V] of each
    /// prompt's last token.
    /// </summary>
    private Tensor Prefill(IReadOnlyList<int[]> prompts, int P)
    {
        int U = prompts.Count;
        var device = model.Device;
        var ids = new long[U, P];
        for (int g = 0; g < U; g++)
            for (int j = 0; j < prompts[g].Length; j++)
                ids[g, j] = prompts[g][j];
        var hidden = model.Hidden(torch.tensor(ids, device: device), null, null, cache, 0);
        var last = torch.tensor(prompts.Select(p => (long)p.Length - 1).ToArray(), device: device).view(U, 1, 1).expand(U, 1, hidden.shape[2]);
        return model.Logits(hidden.gather(1, last)).squeeze(1);
    }

    /// <summary>
    /// Runs the rest of <paramref name="prompts"/> whose first <paramref name="shared"/> tokens' keys and values are
    /// already in cache rows rowFirst.. (from the prefix pool): right-padded to <paramref name="tokens"/>, at positions
    /// shared + t, each query attending to its row's slots up to its own; returns the logits [U, V] of each prompt's
    /// last token.
    /// </summary>
    private Tensor PrefillAfter(IReadOnlyList<int[]> prompts, int[] shared, long rowFirst, int tokens)
    {
        int U = prompts.Count;
        var device = model.Device;
        var ids = new long[U, tokens];
        var positions = new long[U, tokens];
        for (int u = 0; u < U; u++)
            for (int t = 0; t < tokens; t++)
            {
                int at = shared[u] + t;
                ids[u, t] = at < prompts[u].Length ? prompts[u][at] : 0;
                positions[u, t] = at;
            }
        long span = shared.Max() + tokens;
        cache!.PrepareRows(rowFirst, shared.Select(x => (long)x).ToArray(), tokens, span);
        var slots = torch.arange(Num(0L), Num(span), dtype: ScalarType.Int64, device: device).view(1, 1, span);
        var mask = slots.le(torch.tensor(positions, device: device).unsqueeze(-1)).unsqueeze(1);                 // [U, 1, T, span]
        var hidden = model.Hidden(torch.tensor(ids, device: device), torch.tensor(positions, device: device), mask, cache, 0);
        var last = torch.tensor(prompts.Select((p, u) => (long)(p.Length - shared[u] - 1)).ToArray(), device: device).view(U, 1, 1).expand(U, 1, hidden.shape[2]);
        return model.Logits(hidden.gather(1, last)).squeeze(1);
    }

    /// <summary>One token for every live sequence; returns those that stopped.</summary>
    public IReadOnlyList<(GenerationRow Row, GenerationResult Result)> Step()
    {
        long started = Stopwatch.GetTimestamp();
        try { return StepRows(); }
        finally { StepTime += Stopwatch.GetElapsedTime(started); }
    }

    private IReadOnlyList<(GenerationRow Row, GenerationResult Result)> StepRows()
    {
        var finished = new List<(GenerationRow, GenerationResult)>();
        int n = live.Count;
        if (n == 0) return finished;
        using var mode = new InferenceMode(model, n);
        using var scope = torch.NewDisposeScope();
        var device = model.Device;
        long forward = Stopwatch.GetTimestamp();
        if (fused is not null)
        {
            var logits = fused.Run(live.Select(s => new DecodeRun(new[] { s.Tokens[^1] }, 0, 1, (int)s.Write, s.Slot, s.Owner.Slot, s.PromptLength)).ToList(), cache!);
            ForwardTime += Stopwatch.GetElapsedTime(forward);
            return Finish(logits);
        }
        var writes = live.Select(s => s.Write).ToArray();
        long span = writes.Max() + 1;
        cache!.PrepareStep(writes, span, sharePrompts ? live.Select(s => (s.Owner.Slot, s.PromptLength)).ToList() : null);
        // The mask is SDPA's (slots 0..write of each row); SlotAttention, which serves the steps whose prompts are shared,
        // reads just those slots itself.
        var keyMask = sharePrompts ? null
            : torch.arange(Num(0L), Num(span), dtype: ScalarType.Int64, device: device).unsqueeze(0).le(torch.tensor(writes, device: device).unsqueeze(1)).view(n, 1, 1, span);
        var input = torch.tensor(live.Select(s => (long)s.Tokens[^1]).ToArray(), device: device).unsqueeze(1);
        var pos = torch.tensor(live.Select(s => (long)(s.PromptLength + s.Tokens.Count - 1)).ToArray(), device: device).unsqueeze(1);
        var hidden = model.Hidden(input, pos, keyMask, cache, 0);
        var stepLogits = model.Logits(hidden).squeeze(1);
        ForwardTime += Stopwatch.GetElapsedTime(forward);
        return Finish(stepLogits);
    }

    /// <summary>Samples each live sequence's next token from the step's logits [n, V]; returns the sequences that stopped.</summary>
    private IReadOnlyList<(GenerationRow Row, GenerationResult Result)> Finish(Tensor logits)
    {
        var finished = new List<(GenerationRow, GenerationResult)>();
        int n = live.Count;
        long sampling = Stopwatch.GetTimestamp();
        var next = Sample(logits, live.Select(s => s.Job).ToList(), live.Select(s => (long)s.Tokens.Count).ToList());
        SampleTime += Stopwatch.GetElapsedTime(sampling);
        Steps++;
        RowSteps += n;

        var done = new List<int>();
        for (int i = 0; i < n; i++)
        {
            live[i].Write++;
            if (Accept(live[i], next[i]) is { } result) { finished.Add((live[i].Job, result)); done.Add(i); }
        }
        RemoveRows(done);
        return finished;
    }

    /// <summary>Drops the live sequences <paramref name="match"/> selects (cancelled requests); returns how many.</summary>
    public int Remove(Func<GenerationRow, bool> match)
    {
        var drop = Enumerable.Range(0, live.Count).Where(i => match(live[i].Job)).ToList();
        RemoveRows(drop);
        return drop.Count;
    }

    /// <summary>Drops every sequence (after a failure).</summary>
    public void Clear()
    {
        live.Clear();
        cache?.Dispose();
        cache = null;
        pool?.Dispose();
        pool = null;
    }

    private long[] Sample(Tensor logits, IReadOnlyList<GenerationRow> jobs, IReadOnlyList<long> steps)
    {
        var uniform = jobs.Select((j, i) => j.Temperature == 0 ? 0.0 : RowRandom.Uniform(j.Seed, j.Row, steps[i])).ToList();
        using var ids = RowSampler.Sample(logits, jobs.Select(j => j.Temperature).ToList(), jobs.Select(j => j.TopP).ToList(), uniform);
        using var onCpu = ids.cpu();
        return onCpu.data<long>().ToArray();
    }

    /// <summary>Appends a sampled token; the result when the sequence stops (the plain path's rules, in its order).</summary>
    private GenerationResult? Accept(Sequence s, long token)
    {
        int t = (int)token;
        s.Tokens.Add(t);
        if (eos.Contains(t))
            return new GenerationResult(s.Tokens.ToArray(), decode?.Invoke(s.Tokens.Take(s.Tokens.Count - 1).ToArray()), StopReason.EndOfSequence, null);
        if (s.Stops?.Check(s.Tokens) is { } hit)
            return new GenerationResult(s.Tokens.ToArray(), hit.Text, StopReason.StopString, hit.Stop);
        if (s.Tokens.Count >= s.MaxNew)
            return new GenerationResult(s.Tokens.ToArray(), decode?.Invoke(s.Tokens.ToArray()), StopReason.MaxTokens, null);
        return null;
    }

    /// <summary>
    /// Removes rows, keeping the live ones dense in 0..n-1: the last live row moves into each hole. A removed row whose
    /// prompt other live rows still read first hands it to one of them.
    /// </summary>
    private void RemoveRows(List<int> rows)
    {
        var leaving = rows.Select(i => live[i]).ToHashSet();
        foreach (int i in rows.OrderByDescending(i => i))
        {
            var gone = live[i];
            if (sharePrompts && gone.Owner == gone)
            {
                var readers = live.Where(x => x != gone && x.Owner == gone && !leaving.Contains(x)).ToList();
                if (readers.Count > 0)
                {
                    var heir = readers[0];
                    cache!.MoveRow(gone.Slot, heir.Slot, 0, gone.PromptLength);
                    foreach (var x in readers) x.Owner = heir;
                }
            }
            int last = live.Count - 1;
            if (i != last)
            {
                var moved = live[last];
                // A row that reads another's prompt has nothing of its own below the prompt's length.
                cache!.MoveRow(last, i, moved.Owner == moved ? 0 : moved.PromptLength, moved.Write);
                moved.Slot = i;
                live[i] = moved;
            }
            live.RemoveAt(last);
        }
    }

    private void EnsureCache(long slots)
    {
        // Capacity in steps of 128 slots, so that growing is rare (each growth copies the cache into fresh memory).
        long capacity = (slots + 127) / 128 * 128;
        if (cache is null)
            cache = new SlotKvCache(model.Config, MaxRows, capacity, model.DType, model.Device);
        else
            cache.EnsureCapacity(capacity);
    }

    public void Dispose()
    {
        Clear();
        fused?.Dispose();
        fused = null;
    }

    /// <summary>Threads of the fused decoder (its results do not depend on it). Default: the processor count.</summary>
    internal int DecoderThreads { get; init; } = Environment.ProcessorCount;

    /// <summary>Whether the forward passes run through <see cref="FusedDecoder"/> (decided when the batch was last empty).</summary>
    internal bool UsesFusedDecoder => fused is not null;

    /// <summary>No gradients, evaluation mode, and for the bf16 decoding kernel torch on one thread (see <see cref="InferenceLinear.SmallStepScope"/>).</summary>
    private readonly struct InferenceMode : IDisposable
    {
        private readonly Qwen2ForCausalLM model;
        private readonly bool wasTraining;
        private readonly IDisposable noGrad;
        private readonly IDisposable? smallSteps;

        public InferenceMode(Qwen2ForCausalLM model, int rows)
        {
            this.model = model;
            wasTraining = model.training;
            if (wasTraining) model.eval();
            noGrad = torch.no_grad();
            smallSteps = InferenceLinear.AppliesTo(model.DType, model.Device) && rows <= InferenceLinear.MaxKernelRows ? InferenceLinear.SmallStepScope() : null;
        }

        public void Dispose()
        {
            smallSteps?.Dispose();
            noGrad.Dispose();
            if (wasTraining) model.train();
        }
    }

    private sealed class PromptComparer : IEqualityComparer<int[]>
    {
        public static readonly PromptComparer Instance = new();
        public bool Equals(int[]? x, int[]? y) => ReferenceEquals(x, y) || (x is not null && y is not null && x.AsSpan().SequenceEqual(y));
        public int GetHashCode(int[] ids)
        {
            var h = new HashCode();
            foreach (int id in ids) h.Add(id);
            return h.ToHashCode();
        }
    }
}
