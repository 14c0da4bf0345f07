using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// The KV cache of continuous batching: per layer [rows, kv_heads, capacity, head_dim], where each row is one sequence
/// with its own write slot, so sequences join and leave the batch independently. The live rows are kept in
/// 0..n-1 (a finished row is replaced by the last one, <see cref="MoveRow"/>), so a step runs over a narrow view.
/// </summary>
/// <remarks>
/// Two ways to write, chosen before each forward pass: <see cref="PrepareBlock"/> (a prefill: rows first..first+U-1
/// write T tokens at slots 0..T-1, like <see cref="KvCache"/>) and <see cref="PrepareStep"/> (a decoding step: row b
/// writes its one token at its own slot and attends over slots 0..span-1, its invalid slots masked by the caller).
/// </remarks>
internal sealed class SlotKvCache : IKvCache, IDisposable
{
    private readonly Tensor[] keys, values;
    private readonly long kvHeads, headDim;
    private long blockFirst = -1, blockRows, stepRows, span;
    private Tensor? stepIndex;   // [n·kv] flat slot indices of this step's writes
    private Tensor? rowsIndex;   // [U·kv·T] flat slot indices of a PrepareRows pass
    private long rowsFirst, rowsCount, rowsTokens;
    private SlotSpan[]? stepSpans;  // where each row of this step finds its keys (its write slot included)

    public SlotKvCache(Qwen2Config config, long rows, long capacity, ScalarType dtype, Device device)
    {
        Rows = rows;
        Capacity = capacity;
        kvHeads = config.NumKeyValueHeads;
        headDim = config.HeadDim;
        keys = new Tensor[config.NumHiddenLayers];
        values = new Tensor[config.NumHiddenLayers];
        for (int i = 0; i < keys.Length; i++)
        {
            // Long-lived: not owned by whatever DisposeScope is current.
            keys[i] = NativeHeap.Zeros(new[] { rows, kvHeads, capacity, headDim }, dtype, device).DetachFromDisposeScope();
            values[i] = NativeHeap.Zeros(new[] { rows, kvHeads, capacity, headDim }, dtype, device).DetachFromDisposeScope();
        }
    }

    /// <summary>Rows (sequences) the cache holds.</summary>
    public long Rows { get; }

    /// <summary>Slots per row.</summary>
    public long Capacity { get; private set; }

    /// <summary>The next forward pass writes rows first..first+count-1 at slots 0..T-1 (a prefill of new rows).</summary>
    public void PrepareBlock(long first, long count)
    {
        if (first < 0 || count < 1 || first + count > Rows) throw new ArgumentOutOfRangeException(nameof(first));
        ClearStep();
        blockFirst = first;
        blockRows = count;
    }

    /// <summary>
    /// The next forward pass (one token per row) writes row b of 0..n-1 at slot <paramref name="writeSlots"/>[b] and
    /// returns slots 0..<paramref name="span"/>-1 of rows 0..n-1 to attend over (SDPA, the caller masking what a row
    /// does not own), or attends itself (<see cref="Attend"/>). With <paramref name="prompts"/>, row b's slots below
    /// Shared are read from row PromptRow instead (a prompt stored once for several rows): only <see cref="Attend"/>
    /// can serve such a step, and it serves it always (see <see cref="AttendsItself"/>).
    /// </summary>
    public void PrepareStep(long[] writeSlots, long span, IReadOnlyList<(int PromptRow, int Shared)>? prompts = null)
    {
        long n = writeSlots.Length;
        if (n < 1 || n > Rows) throw new ArgumentOutOfRangeException(nameof(writeSlots));
        if (span > Capacity || writeSlots.Any(w => w < 0 || w >= span)) throw new InvalidOperationException("A write slot lies outside the span or the capacity.");
        ClearStep();
        var index = new long[n * kvHeads];
        for (long b = 0; b < n; b++)
            for (long h = 0; h < kvHeads; h++)
                index[b * kvHeads + h] = (b * kvHeads + h) * Capacity + writeSlots[b];
        stepIndex = torch.tensor(index, device: keys[0].device).DetachFromDisposeScope();
        stepSpans = writeSlots.Select((w, b) => prompts is null ? new SlotSpan(b, 0, (int)w + 1) : new SlotSpan(prompts[b].PromptRow, prompts[b].Shared, (int)w + 1)).ToArray();
        AttendsItself = prompts is not null;
        stepRows = n;
        this.span = span;
    }

    /// <summary>
    /// The next forward pass (<paramref name="tokens"/> per row: the rest of prompts whose first slots already hold a
    /// cached prefix) writes row first+u's tokens at slots starts[u].. and returns slots 0..<paramref name="span"/>-1
    /// of rows first..first+U-1 to attend over (the caller masks each query to its row's slots up to its own).
    /// </summary>
    public void PrepareRows(long first, long[] starts, int tokens, long span)
    {
        long count = starts.Length;
        if (first < 0 || count < 1 || first + count > Rows || tokens < 1) throw new ArgumentOutOfRangeException(nameof(first));
        if (span > Capacity || starts.Any(x => x < 0 || x + tokens > span)) throw new InvalidOperationException("A write lies outside the span or the capacity.");
        ClearStep();
        var index = new long[count * kvHeads * tokens];
        int at = 0;
        for (long u = 0; u < count; u++)
            for (long h = 0; h < kvHeads; h++)
                for (long t = 0; t < tokens; t++)
                    index[at++] = ((first + u) * kvHeads + h) * Capacity + starts[u] + t;
        rowsIndex = torch.tensor(index, device: keys[0].device).DetachFromDisposeScope();
        rowsFirst = first;
        rowsCount = count;
        rowsTokens = tokens;
        this.span = span;
    }

    public (Tensor K, Tensor V) Append(int layer, Tensor k, Tensor v, long offset)
    {
        using var noGrad = torch.no_grad();
        if (rowsIndex is not null)
        {
            if (k.shape[0] != rowsCount || k.shape[2] != rowsTokens) throw new InvalidOperationException("The tokens do not match the prepared rows.");
            long total = Rows * kvHeads * Capacity, n = rowsCount * kvHeads * rowsTokens;
            keys[layer].view(total, headDim).index_copy_(0, rowsIndex, k.reshape(n, headDim));
            values[layer].view(total, headDim).index_copy_(0, rowsIndex, v.reshape(n, headDim));
            return (keys[layer].narrow(0, rowsFirst, rowsCount).narrow(2, 0, span), values[layer].narrow(0, rowsFirst, rowsCount).narrow(2, 0, span));
        }
        if (stepIndex is not null)
        {
            if (k.shape[0] != stepRows || k.shape[2] != 1) throw new InvalidOperationException("A step writes one token for each prepared row.");
            long total = Rows * kvHeads * Capacity;
            keys[layer].view(total, headDim).index_copy_(0, stepIndex, k.reshape(stepRows * kvHeads, headDim));
            values[layer].view(total, headDim).index_copy_(0, stepIndex, v.reshape(stepRows * kvHeads, headDim));
            return (keys[layer].narrow(0, 0, stepRows).narrow(2, 0, span), values[layer].narrow(0, 0, stepRows).narrow(2, 0, span));
        }
        if (blockFirst < 0) throw new InvalidOperationException("Prepare a block or a step before the forward pass.");
        long t = k.shape[2];
        if (k.shape[0] != blockRows || offset + t > Capacity) throw new InvalidOperationException("The block does not fit the prepared rows or the capacity.");
        var kRows = keys[layer].narrow(0, blockFirst, blockRows);
        var vRows = values[layer].narrow(0, blockFirst, blockRows);
        kRows.narrow(2, offset, t).copy_(k);
        vRows.narrow(2, offset, t).copy_(v);
        return (kRows.narrow(2, 0, offset + t), vRows.narrow(2, 0, offset + t));
    }

    /// <summary>
    /// In a step, on the CPU: attention over each row's slots 0..write (<see cref="SlotAttention"/>), which a step's
    /// rows all own; a row's slots after its write slot are never read.
    /// </summary>
    public Tensor? Attend(int layer, Tensor q)
    {
        if (stepIndex is null || stepSpans is null) return null;
        if (!AttendsItself && !SlotAttention.AppliesTo(keys[layer].dtype, keys[layer].device)) return null;
        if (q.shape[0] != stepRows) throw new InvalidOperationException("The queries do not match the prepared rows.");
        return SlotAttention.Attend(q, keys[layer], values[layer], stepSpans);
    }

    /// <summary>
    /// Whether the prepared step was given <c>prompts</c>: its rows may read other rows' prompts, and <see cref="Attend"/>
    /// serves it whatever <see cref="SlotAttention.Enabled"/> says (SDPA over the rows' own slots would be wrong).
    /// </summary>
    public bool AttendsItself { get; private set; }

    /// <summary>Copies slots 0..slots-1 of rows <paramref name="from"/> to rows <paramref name="to"/> (new rows sharing a prefilled prompt).</summary>
    public void CopyRows(long[] from, long[] to, long slots)
    {
        if (from.Length != to.Length) throw new ArgumentException("from and to differ in length.");
        if (from.Length == 0) return;
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var device = keys[0].device;
        var src = torch.tensor(from, device: device);
        var dst = torch.tensor(to, device: device);
        foreach (var cache in keys.Concat(values))
        {
            var part = cache.narrow(2, 0, slots);
            part.index_copy_(0, dst, part.index(new[] { src }));   // = index_select(0, src), which meta lacks
        }
    }

    /// <summary>Row <paramref name="from"/>'s slots first..end-1 become row <paramref name="to"/>'s (keeping the batch dense, handing over a shared prompt).</summary>
    public void MoveRow(long from, long to, long first, long end)
    {
        if (from == to || end <= first) return;
        using var noGrad = torch.no_grad();
        foreach (var cache in keys.Concat(values))
            cache[to].narrow(1, first, end - first).copy_(cache[from].narrow(1, first, end - first));
    }

    /// <summary>The key and value tensors [rows, kv, capacity, d] of every layer (replaced when the cache grows).</summary>
    internal IReadOnlyList<(Tensor Keys, Tensor Values)> Layers => keys.Zip(values).ToList();

    /// <summary>Grows every row to at least <paramref name="capacity"/> slots, keeping what is stored.</summary>
    public void EnsureCapacity(long capacity)
    {
        if (capacity <= Capacity) return;
        ClearStep();
        using var noGrad = torch.no_grad();
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i] = Grow(keys[i], capacity);
            values[i] = Grow(values[i], capacity);
        }
        Capacity = capacity;
    }

    private Tensor Grow(Tensor old, long capacity)
    {
        var grown = NativeHeap.Zeros(new[] { Rows, kvHeads, capacity, headDim }, old.dtype, old.device).DetachFromDisposeScope();
        grown.narrow(2, 0, Capacity).copy_(old);
        old.Dispose();
        return grown;
    }

    private void ClearStep()
    {
        rowsIndex?.Dispose();
        rowsIndex = null;
        stepIndex?.Dispose();
        stepIndex = null;
        stepSpans = null;
        AttendsItself = false;
        blockFirst = -1;
    }

    public void Dispose()
    {
        ClearStep();
        foreach (var t in keys) t.Dispose();
        foreach (var t in values) t.Dispose();
    }
}
