using System.Collections.Concurrent;
using Microsoft.ML.Data;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// What a saved model that carries a weight bundle (step scorer, generator) keeps in its config column. The JSON
/// shape, <c>{"BundleSha256": …}</c>, is part of saved zips.
/// </summary>
internal sealed class BundleSettings
{
    /// <summary>SHA-256 of the bundle (the weights column); the cache key of the loaded models.</summary>
    public string BundleSha256 { get; set; } = "";
}

/// <summary>Turns the bytes of a weight bundle (read in place, not kept) into a model.</summary>
internal delegate T BundleLoader<T>(ReadOnlySpan<byte> bundle);

/// <summary>
/// The process-wide cache of weight bundles already turned into models (step scorers, generators), keyed by the
/// bundle's SHA-256, and the gate that keeps a saved model from copying its weights on every row.
/// </summary>
/// <remarks>
/// A saved model carries its weights as one byte vector that a ValueMapping looks up by a key column. The key comes
/// from a small stateless mapping (<see cref="KeyFor"/>): the real key (<see cref="WeightsKey"/>) while the bundle is
/// not loaded in this process, an absent key afterwards, for which ValueMapping yields an empty vector without
/// touching the stored one. So the big vector reaches the model mapping once per process, not once per row.
/// <para>
/// Between the key decision and the model mapping of the same row the cache may be cleared. The key mapping runs
/// inside the model mapping's input fetch, on the same thread, so it pins what it saw in a thread-static slot that
/// the model mapping takes: a row whose weights were withheld always finds its model.
/// </para>
/// </remarks>
internal static class LoadedBundles
{
    /// <summary>The key under which the ValueMapping stores the bundle.</summary>
    public const string WeightsKey = "w";

    private static readonly ConcurrentDictionary<string, Lazy<object>> s_loaded = new();
    private static readonly ConcurrentDictionary<string, int> s_deliveries = new();

    // Per thread, by bundle hash: the model a key mapping saw loaded, until that row's model mapping takes it
    // (keyed so that nested chains, e.g. a generator reading a scorer's output, cannot take each other's pins).
    [ThreadStatic] private static Dictionary<string, object>? t_pinned;

    /// <summary>Makes an in-memory model available under its bundle hash (a freshly fitted model does not reload itself).</summary>
    public static void Register(string sha, object model) => s_loaded[sha] = new Lazy<object>(model);

    /// <summary>Forgets every loaded model (benchmarks measure cold loads with it).</summary>
    public static void Clear() => s_loaded.Clear();

    /// <summary>How many rows received the non-empty weight vector of bundle <paramref name="sha"/> (tests).</summary>
    internal static int Deliveries(string sha) => s_deliveries.GetValueOrDefault(sha);

    private static bool TryGetLoaded(string sha, out object model)
    {
        if (s_loaded.TryGetValue(sha, out var lazy) && lazy.IsValueCreated)
        {
            model = lazy.Value;
            return true;
        }
        model = null!;
        return false;
    }

    /// <summary>The ValueMapping key for a row of the model whose bundle hash is <paramref name="sha"/>.</summary>
    public static string KeyFor(string sha)
    {
        if (TryGetLoaded(sha, out var model))
        {
            (t_pinned ??= new Dictionary<string, object>(StringComparer.Ordinal))[sha] = model;
            return string.Empty; // not in the ValueMapping: the row gets an empty vector
        }
        t_pinned?.Remove(sha);
        return WeightsKey;
    }

    /// <summary>
    /// The model of bundle <paramref name="sha"/>: loaded from <paramref name="bundle"/> by <paramref name="load"/> when
    /// the row carries the weights and the model is not loaded yet, else the cached or pinned one.
    /// </summary>
    public static T Resolve<T>(string sha, in VBuffer<byte> bundle, BundleLoader<T> load, string what) where T : class
    {
        object? pinned = null;
        t_pinned?.Remove(sha, out pinned);
        if (bundle.Length > 0)
        {
            s_deliveries.AddOrUpdate(sha, 1, (_, n) => n + 1);
            if (bundle.GetValues().Length != bundle.Length)
                throw new InvalidDataException($"The {what}'s weights are stored as a sparse vector: the model file is corrupted.");
            var weights = bundle; // the struct, not the bytes: read in place by the loader, synchronously
            return GetOrLoad(sha, () => load(weights.GetValues()));
        }
        if (TryGetLoaded(sha, out var cached)) return (T)cached;
        if (pinned is not null) return (T)pinned;
        throw new InvalidDataException($"The {what} model holds no weights.");
    }

    /// <summary>Loads (once per process and hash; concurrent callers wait for the one load) or returns the cached model.</summary>
    public static T GetOrLoad<T>(string sha, Func<T> load) where T : class =>
        (T)s_loaded.GetOrAdd(sha, _ => new Lazy<object>(() => load(), LazyThreadSafetyMode.ExecutionAndPublication)).Value;

    /// <summary>Checks <paramref name="bytes"/> against the recorded hash before anything reads them.</summary>
    public static void CheckHash(ReadOnlySpan<byte> bytes, string expectedSha, string what)
    {
        if (bytes.Length == 0) throw new InvalidDataException($"The {what} model holds no weights.");
        var sha = ScorerBundle.Sha256(bytes);
        if (sha != expectedSha)
            throw new InvalidDataException($"The {what}'s weights do not match their recorded hash (got {sha}, expected {expectedSha}): the model file is corrupted.");
    }
}
