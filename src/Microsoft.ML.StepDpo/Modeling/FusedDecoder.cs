using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// A run of one sequence's tokens for <see cref="FusedDecoder"/>: tokens[Start..Start+Count) at positions
/// First, First+1, …, whose keys and values go to slots First.. of cache row <paramref name="CacheRow"/> (a row holds
/// its sequence from slot 0, so a token's slot is its position). Token j attends to slots 0..Shared-1 of row
/// <paramref name="PromptRow"/> (a prompt stored once for several rows) and then to its own row's slots up to its own.
/// A decoding step is one token per sequence; a prefill is a prompt (or the rest of one) per sequence.
/// </summary>
internal readonly record struct DecodeRun(int[] Tokens, int Start, int Count, int First, int CacheRow, int PromptRow, int Shared);

/// <summary>
/// The Qwen2 forward pass of continuous batching in float32 on the CPU, written out in C#: embedding, per layer RMSNorm,
/// q/k/v projection, rotary embedding, the keys and values written into the <see cref="SlotKvCache"/>, attention over
/// each token's own slots (<see cref="SlotAttention"/>), output projection, RMSNorm, SwiGLU MLP, and the final norm and
/// LM head for each run's last token. Sequences are independent, so the batch is split into groups of sequences that
/// go through all layers on one thread each, with no synchronization between layers; and every projection is
/// <see cref="PackedWeight"/>'s kernel, whose result for a row does not depend on the other rows, so a sequence's
/// logits are the same bits whatever batch it is in and however many threads run. Libtorch's path does the same math
/// (to float32 rounding: sums in another order) at a cost of some 25 small operations per layer on one thread, which
/// at the demo model's size (128 hidden) weigh more than the arithmetic.
/// </summary>
/// <remarks>
/// Serves float32 models on CPUs with AVX-512F without active LoRA adapters, head sizes divisible by 8 and at most
/// <see cref="MaxParameters"/> parameters (the weights are copied, repacked, once per <see cref="FusedDecoder"/>).
/// The packed copy is taken when the decoder is built: a model trained afterwards needs a new decoder
/// (<see cref="ContinuousBatchGenerator"/> builds one whenever its batch has run empty).
/// </remarks>
internal sealed unsafe class FusedDecoder : IDisposable
{
    /// <summary>Process-wide switch: false leaves continuous batching to libtorch's ops (tests and benchmarks compare both).</summary>
    internal static bool Enabled { get; set; } = true;

    /// <summary>Largest model served (parameters): its packed copy must stay small beside the model itself.</summary>
    internal const long MaxParameters = 64L << 20;

    /// <summary>Whether the decoder serves this model (see the remarks).</summary>
    public static bool AppliesTo(Qwen2ForCausalLM model) =>
        Enabled && PackedWeight.Supported && model.Device.type == DeviceType.CPU && model.DType == ScalarType.Float32
        && model.Config.HeadDim % 8 == 0 && model.parameters().Sum(p => p.numel()) <= MaxParameters
        && model.Projections().All(p => !(p.Linear.HasAdapter && p.Linear.AdapterEnabled));

    private sealed class Layer : IDisposable
    {
        public float[] InNorm = null!, PostNorm = null!;
        public PackedWeight Qkv = null!, O = null!, GateUp = null!, Down = null!;

        public void Dispose()
        {
            Qkv.Dispose(); O.Dispose(); GateUp.Dispose(); Down.Dispose();
        }
    }

    private readonly Qwen2Config config;
    private readonly int H, Hq, Hkv, Nqkv, I, V, heads, kvHeads, d;
    private readonly float eps;
    private readonly float[] embedding, finalNorm;
    private readonly Layer[] layers;
    private readonly PackedWeight lmHead;
    private readonly int gemmScratch;   // floats of scratch the largest projection needs
    private float[] cos = Array.Empty<float>(), sin = Array.Empty<float>();   // [positions, d], libtorch's own rotary tables
    private int tablePositions;
    private readonly ConcurrentBag<Workspace> workspaces = new();

    public FusedDecoder(Qwen2ForCausalLM model)
    {
        if (!AppliesTo(model)) throw new ArgumentException("The fused decoder serves float32 CPU models without active adapters (see FusedDecoder.AppliesTo).", nameof(model));
        config = model.Config;
        H = config.HiddenSize; heads = config.NumAttentionHeads; kvHeads = config.NumKeyValueHeads; d = config.HeadDim;
        Hq = heads * d; Hkv = kvHeads * d; Nqkv = Hq + 2 * Hkv; I = config.IntermediateSize; V = config.VocabSize;
        eps = (float)config.RmsNormEps;
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        static float[] Floats(Tensor t) => t.detach().contiguous().data<float>().ToArray();
        embedding = Floats(model.Model.Embedding.Weight);
        finalNorm = Floats(model.Model.Norm.Weight);
        layers = model.Model.Layers.Select(l =>
        {
            var a = l.Attention;
            var m = l.Mlp;
            var qkvBias = a.QProj.Bias is null ? default : Floats(torch.cat(new Tensor[] { a.QProj.Bias, a.KProj.Bias!, a.VProj.Bias! }, 0)).AsSpan();
            return new Layer
            {
                InNorm = Floats(l.InputNorm.Weight),
                PostNorm = Floats(l.PostAttentionNorm.Weight),
                Qkv = new PackedWeight(Floats(torch.cat(new Tensor[] { a.QProj.Weight, a.KProj.Weight, a.VProj.Weight }, 0)), Nqkv, H, qkvBias),
                O = new PackedWeight(Floats(a.OProj.Weight), H, Hq),
                GateUp = new PackedWeight(Floats(torch.cat(new Tensor[] { m.GateProj.Weight, m.UpProj.Weight }, 0)), 2 * I, H),
                Down = new PackedWeight(Floats(m.DownProj.Weight), H, I),
            };
        }).ToArray();
        lmHead = new PackedWeight(Floats(model.LmHead?.Weight ?? model.Model.Embedding.Weight), V, H);
        gemmScratch = layers.SelectMany(x => new[] { x.Qkv, x.O, x.GateUp, x.Down }).Append(lmHead).Max(w => w.ScratchFloats);
    }

    /// <summary>Threads that run groups of sequences (the results do not depend on it). Default: the processor count.</summary>
    internal int Threads { get; set; } = Environment.ProcessorCount;

    /// <summary>Most rows (tokens) in one group of sequences that one thread takes through the layers.</summary>
    internal int RowsPerGroup { get; set; } = 32;

    /// <summary>
    /// Runs <paramref name="runs"/> through the model, writing their keys and values into <paramref name="cache"/>;
    /// returns the logits [runs, vocab] (float32) of each run's last token.
    /// </summary>
    public Tensor Run(IReadOnlyList<DecodeRun> runs, SlotKvCache cache)
    {
        if (runs.Count == 0) throw new ArgumentException("Nothing to run.", nameof(runs));
        var cacheLayers = cache.Layers;
        if (cacheLayers.Count != layers.Length || cacheLayers[0].Keys.dtype != ScalarType.Float32 || cacheLayers[0].Keys.device_type != DeviceType.CPU)
            throw new ArgumentException("The cache does not belong to this model.", nameof(cache));
        int capacity = (int)cache.Capacity, rows = (int)cache.Rows;
        foreach (var r in runs)
        {
            if (r.Count < 1 || r.Start < 0 || r.Start + r.Count > r.Tokens.Length) throw new ArgumentException("A run's tokens lie outside its array.", nameof(runs));
            if (r.First < 0 || r.First + r.Count > capacity || r.CacheRow < 0 || r.CacheRow >= rows || r.PromptRow < 0 || r.PromptRow >= rows || r.Shared < 0 || r.Shared > r.First)
                throw new ArgumentException("A run lies outside the cache.", nameof(runs));
            for (int j = r.Start; j < r.Start + r.Count; j++)
                if ((uint)r.Tokens[j] >= (uint)V) throw new ArgumentException($"Token {r.Tokens[j]} is outside the vocabulary ({V}).", nameof(runs));
        }
        EnsureRotary(runs.Max(r => r.First + r.Count));

        var keys = new nint[layers.Length];
        var values = new nint[layers.Length];
        for (int l = 0; l < layers.Length; l++)
        {
            keys[l] = Address(cacheLayers[l].Keys);
            values[l] = Address(cacheLayers[l].Values);
        }
        var logits = torch.empty(new long[] { runs.Count, V }, dtype: ScalarType.Float32);
        float* output = (float*)Address(logits);
        var shape = new SlotAttention.Shape(heads, kvHeads, capacity, d);

        // Sequences reading the same stored prompt next to each other (its keys stay in cache), then split into groups
        // of about equal rows, at least one per thread.
        var order = Enumerable.Range(0, runs.Count).OrderBy(i => runs[i].Shared > 0 ? runs[i].PromptRow : runs[i].CacheRow).ToArray();
        long total = runs.Sum(r => (long)r.Count);
        int threads = Math.Max(1, Threads);
        long groupsWanted = Math.Max(threads, (total + RowsPerGroup - 1) / RowsPerGroup);
        groupsWanted = (groupsWanted + threads - 1) / threads * threads;
        long target = Math.Max(1, (total + groupsWanted - 1) / groupsWanted);
        var groups = new List<(int From, int To)>();
        for (int i = 0; i < order.Length;)
        {
            int from = i;
            long sum = 0;
            while (i < order.Length && (sum == 0 || sum + runs[order[i]].Count <= target)) sum += runs[order[i++]].Count;
            groups.Add((from, i));
        }

        void RunGroup(int g)
        {
            var (from, to) = groups[g];
            var mine = new DecodeRun[to - from];
            var slots = new int[to - from];
            for (int i = from; i < to; i++) { mine[i - from] = runs[order[i]]; slots[i - from] = order[i]; }
            if (!workspaces.TryTake(out var ws)) ws = new Workspace();
            try { Forward(mine, slots, ws, keys, values, shape, output); }
            finally { workspaces.Add(ws); }
        }
        if (threads == 1 || groups.Count == 1)
            for (int g = 0; g < groups.Count; g++) RunGroup(g);
        else
            Parallel.For(0, groups.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, RunGroup);
        return logits;
    }

    private static nint Address(Tensor t)
    {
        if (!t.is_contiguous()) throw new ArgumentException("Expected a contiguous tensor.");
        return NativeHeap.Address(t);
    }

    /// <summary>Rotary cos/sin for positions 0..count-1, computed by <see cref="Rotary.Tables"/> (the same floats as libtorch's path).</summary>
    private void EnsureRotary(int count)
    {
        if (count <= tablePositions) return;
        int positions = Math.Max(count, Math.Min(Math.Max(64, tablePositions * 2), config.MaxPositionEmbeddings));
        using var scope = torch.NewDisposeScope();
        var ids = torch.arange(Num(0L), Num((long)positions), dtype: ScalarType.Int64).unsqueeze(0);
        var (c, s) = Rotary.Tables(ids, d, config.RopeTheta, ScalarType.Float32);
        cos = GC.AllocateUninitializedArray<float>(positions * d, pinned: true);
        sin = GC.AllocateUninitializedArray<float>(positions * d, pinned: true);
        c.contiguous().data<float>().CopyTo(cos, 0);
        s.contiguous().data<float>().CopyTo(sin, 0);
        tablePositions = positions;
    }

    /// <summary>Buffers of one thread's group (grown as needed, reused across calls).</summary>
    private sealed class Workspace
    {
        private float[] buffer = Array.Empty<float>();

        public float[] Get(long floats)
        {
            if (buffer.Length < floats) buffer = GC.AllocateUninitializedArray<float>((int)Math.Max(floats, buffer.Length * 3L / 2), pinned: true);
            return buffer;
        }
    }

    /// <summary>One group of runs through every layer; the last token's logits of run i go to row slots[i] of output.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Forward(DecodeRun[] runs, int[] slots, Workspace ws, nint[] keys, nint[] values, SlotAttention.Shape shape, float* output)
    {
        int R = runs.Sum(r => r.Count), U = runs.Length;
        int longest = runs.Max(r => r.First + r.Count);
        long need = (long)R * (3 * H + Nqkv + Hq + 3 * I) + gemmScratch + 4L * longest + (long)U * (H + V) + 64;
        var array = ws.Get(need);
        fixed (float* start = array)
        {
            float* at = start;
            float* Take(long n) { float* p = at; at += n; return p; }
            float* x = Take((long)R * H), xn = Take((long)R * H), tmp = Take((long)R * H), qkv = Take((long)R * Nqkv), att = Take((long)R * Hq);
            float* gu = Take((long)R * 2 * I), act = Take((long)R * I), scratch = Take(gemmScratch), attention = Take(4L * longest);
            float* lastX = Take((long)U * H), lastLogits = Take((long)U * V);

            // Token embeddings.
            int row = 0;
            foreach (var r in runs)
                for (int j = 0; j < r.Count; j++, row++)
                    embedding.AsSpan(r.Tokens[r.Start + j] * H, H).CopyTo(new Span<float>(x + (long)row * H, H));

            for (int l = 0; l < layers.Length; l++)
            {
                var layer = layers[l];
                float* k = (float*)keys[l], v = (float*)values[l];
                RmsNorm(x, xn, R, layer.InNorm);
                layer.Qkv.Multiply(xn, R, H, qkv, Nqkv, scratch);
                // Rotary on q and k, then each token's key and value into its slot; all of a run's tokens are stored
                // before any attends (a prefill's tokens read each other's).
                row = 0;
                foreach (var r in runs)
                    for (int j = 0; j < r.Count; j++, row++)
                    {
                        int position = r.First + j;
                        float* q = qkv + (long)row * Nqkv;
                        for (int h = 0; h < heads + kvHeads; h++) Rotate(q + h * d, position);
                        for (int h = 0; h < kvHeads; h++)
                        {
                            long slot = (((long)r.CacheRow * kvHeads + h) * shape.Capacity + position) * d;
                            new ReadOnlySpan<float>(q + Hq + h * d, d).CopyTo(new Span<float>(k + slot, d));
                            new ReadOnlySpan<float>(q + Hq + Hkv + h * d, d).CopyTo(new Span<float>(v + slot, d));
                        }
                    }
                row = 0;
                foreach (var r in runs)
                    for (int j = 0; j < r.Count; j++, row++)
                        SlotAttention.RowFloat(qkv + (long)row * Nqkv, k, v, att + (long)row * Hq, new SlotSpan(r.PromptRow, r.Shared, r.First + j + 1), shape, r.CacheRow, attention);
                layer.O.Multiply(att, R, Hq, tmp, H, scratch);
                FloatKernels.AddInPlace(x, tmp, (long)R * H);
                RmsNorm(x, xn, R, layer.PostNorm);
                layer.GateUp.Multiply(xn, R, H, gu, 2 * I, scratch);
                for (int i = 0; i < R; i++) FloatKernels.SiluTimes(gu + (long)i * 2 * I, gu + (long)i * 2 * I + I, act + (long)i * I, I);
                layer.Down.Multiply(act, R, I, tmp, H, scratch);
                FloatKernels.AddInPlace(x, tmp, (long)R * H);
            }

            // The final norm and the LM head for each run's last token.
            row = 0;
            for (int u = 0; u < U; u++)
            {
                row += runs[u].Count;
                new ReadOnlySpan<float>(x + (long)(row - 1) * H, H).CopyTo(new Span<float>(lastX + (long)u * H, H));
            }
            RmsNorm(lastX, lastX, U, finalNorm);
            lmHead.Multiply(lastX, U, H, lastLogits, V, scratch);
            for (int u = 0; u < U; u++)
                new ReadOnlySpan<float>(lastLogits + (long)u * V, V).CopyTo(new Span<float>(output + (long)slots[u] * V, V));
        }
    }

    /// <summary>
    /// y = w · (x · 1/√(mean(x²) + eps)) per row, as <see cref="RmsNorm"/> computes it in float32 (its mean summed in
    /// another order). y may be x.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RmsNorm(float* x, float* y, int rows, float[] weight)
    {
        fixed (float* w = weight)
            for (int i = 0; i < rows; i++) FloatKernels.RmsNorm(x + (long)i * H, y + (long)i * H, H, w, eps);
    }

    /// <summary>
    /// Hugging Face's rotate_half rotary embedding of one head in place: x·cos + rotate_half(x)·sin, each product and
    /// the sum rounded as libtorch rounds them (no fused multiply-add).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Rotate(float* x, int position)
    {
        int half = d / 2, c = 0;
        float* cp = Table(cos, position), sp = Table(sin, position);
        // Sixteen pairs (c, c + half) at a time, then the rest one by one: the same products and sums either way.
        for (; c + 16 <= half; c += 16)
        {
            var lo = Vector512.Load(x + c);
            var hi = Vector512.Load(x + c + half);
            var newLo = Vector512.Load(cp + c) * lo + Vector512.Load(sp + c) * -hi;
            var newHi = Vector512.Load(cp + c + half) * hi + Vector512.Load(sp + c + half) * lo;
            newLo.Store(x + c);
            newHi.Store(x + c + half);
        }
        for (; c < half; c++)
        {
            float lo = x[c], hi = x[c + half];
            x[c] = lo * cp[c] + -hi * sp[c];
            x[c + half] = hi * cp[c + half] + lo * sp[c + half];
        }
    }

    // The tables live on the pinned heap (EnsureRotary), so their addresses hold.
    private float* Table(float[] table, int position) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(table)) + (long)position * d;

    public void Dispose()
    {
        foreach (var l in layers) l.Dispose();
        lmHead.Dispose();
    }
}
