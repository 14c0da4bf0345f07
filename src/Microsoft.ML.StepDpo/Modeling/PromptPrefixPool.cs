using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Keys and values of recently prefilled prompts, kept after their sequences have left the batch, so that a later
/// prompt that begins with one of them prefills only what follows (a problem's rollouts and rectifications all begin
/// with the prompt its samples were drawn from). Entries are replaced least recently used first; a prompt is found by
/// its longest common token prefix with an entry (at least <see cref="MinShared"/> tokens).
/// </summary>
/// <remarks>
/// The stored keys and values are those the model computed for the entry's tokens, which are the same for any prompt
/// that begins with them (attention is causal), up to the rounding that batch shapes can change. They are only valid
/// for the weights they were computed with: the owner clears the pool whenever it may be reused after a change.
/// </remarks>
internal sealed class PromptPrefixPool : IDisposable
{
    private readonly Qwen2Config config;
    private readonly ScalarType dtype;
    private readonly Device device;
    private readonly int[]?[] prompts;
    private readonly long[] lastUse;
    private readonly Dictionary<long, List<int>> byHead = new();
    private Tensor[]? keys, values;   // per layer [entries, kv, capacity, d]
    private long clock;

    public PromptPrefixPool(Qwen2Config config, int entries, ScalarType dtype, Device device)
    {
        if (entries < 1) throw new ArgumentOutOfRangeException(nameof(entries));
        this.config = config;
        this.dtype = dtype;
        this.device = device;
        prompts = new int[]?[entries];
        lastUse = new long[entries];
    }

    /// <summary>Fewest shared tokens worth a lookup.</summary>
    public const int MinShared = 16;

    /// <summary>Tokens an entry can hold.</summary>
    public long Capacity { get; private set; }

    /// <summary>
    /// The entry sharing the longest token prefix with <paramref name="prompt"/>, and how many tokens it covers (at most
    /// all but the prompt's last token, which must run to give the next token's logits); (-1, 0) when none shares
    /// <see cref="MinShared"/>.
    /// </summary>
    public (int Entry, int Shared) Find(int[] prompt)
    {
        if (prompt.Length <= MinShared || !byHead.TryGetValue(Head(prompt), out var candidates)) return (-1, 0);
        int best = -1, bestShared = 0;
        foreach (int e in candidates)
        {
            var stored = prompts[e]!;
            int shared = stored.AsSpan().CommonPrefixLength(prompt);
            if (shared > bestShared) (best, bestShared) = (e, shared);
        }
        bestShared = Math.Min(bestShared, prompt.Length - 1);
        if (best < 0 || bestShared < MinShared) return (-1, 0);
        lastUse[best] = ++clock;
        return (best, bestShared);
    }

    /// <summary>Copies entry <paramref name="entry"/>'s first <paramref name="shared"/> slots into row <paramref name="row"/> of <paramref name="cache"/>.</summary>
    public void Load(int entry, int shared, SlotKvCache cache, long row)
    {
        using var noGrad = torch.no_grad();
        var layers = cache.Layers;
        for (int l = 0; l < layers.Count; l++)
        {
            layers[l].Keys[row].narrow(1, 0, shared).copy_(keys![l][entry].narrow(1, 0, shared));
            layers[l].Values[row].narrow(1, 0, shared).copy_(values![l][entry].narrow(1, 0, shared));
        }
    }

    /// <summary>Keeps <paramref name="prompt"/>'s keys and values, slots 0..length-1 of row <paramref name="row"/> (a prompt already kept is only marked used).</summary>
    public void Store(int[] prompt, SlotKvCache cache, long row)
    {
        if (prompt.Length <= MinShared) return;
        long head = Head(prompt);
        if (byHead.TryGetValue(head, out var same) && same.FirstOrDefault(e => prompts[e]!.AsSpan().SequenceEqual(prompt), -1) is int known and >= 0)
        {
            lastUse[known] = ++clock;
            return;
        }
        EnsureCapacity(prompt.Length);
        int entry = Array.IndexOf(prompts, null);
        if (entry < 0)
        {
            entry = Array.IndexOf(lastUse, lastUse.Min());
            byHead[Head(prompts[entry]!)].Remove(entry);
        }
        prompts[entry] = prompt;
        lastUse[entry] = ++clock;
        if (!byHead.TryGetValue(head, out var list)) byHead[head] = list = new List<int>();
        list.Add(entry);
        using var noGrad = torch.no_grad();
        var layers = cache.Layers;
        for (int l = 0; l < layers.Count; l++)
        {
            keys![l][entry].narrow(1, 0, prompt.Length).copy_(layers[l].Keys[row].narrow(1, 0, prompt.Length));
            values![l][entry].narrow(1, 0, prompt.Length).copy_(layers[l].Values[row].narrow(1, 0, prompt.Length));
        }
    }

    /// <summary>Forgets every entry.</summary>
    public void Clear()
    {
        Array.Clear(prompts);
        Array.Clear(lastUse);
        byHead.Clear();
    }

    private void EnsureCapacity(long tokens)
    {
        if (keys is not null && tokens <= Capacity) return;
        // Steps of 128 slots: each growth copies the whole pool into fresh memory, whose first touch costs more than the copy.
        long capacity = Math.Max(Capacity, (tokens + 127) / 128 * 128);
        var shape = new long[] { prompts.Length, config.NumKeyValueHeads, capacity, config.HeadDim };
        using var noGrad = torch.no_grad();
        Tensor Grow(Tensor? old)
        {
            var grown = NativeHeap.Zeros(shape, dtype, device).DetachFromDisposeScope();
            if (old is not null)
            {
                grown.narrow(2, 0, Capacity).copy_(old);
                old.Dispose();
            }
            return grown;
        }
        keys = Enumerable.Range(0, config.NumHiddenLayers).Select(l => Grow(keys?[l])).ToArray();
        values = Enumerable.Range(0, config.NumHiddenLayers).Select(l => Grow(values?[l])).ToArray();
        Capacity = capacity;
    }

    private static long Head(int[] prompt)
    {
        var h = new HashCode();
        for (int i = 0; i < MinShared; i++) h.Add(prompt[i]);
        return h.ToHashCode();
    }

    public void Dispose()
    {
        Clear();
        foreach (var t in (keys ?? Array.Empty<Tensor>()).Concat(values ?? Array.Empty<Tensor>())) t.Dispose();
        keys = values = null;
    }
}
