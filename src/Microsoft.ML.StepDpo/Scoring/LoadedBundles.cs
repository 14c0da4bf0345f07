using System.Collections.Concurrent;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

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
/// bundle's SHA-256 and the device the model runs on, and the gate that keeps a saved model from copying its weights on
/// every row.
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

    /// <summary>Where a model of bundle <paramref name="sha"/> on <paramref name="device"/> (null: the CPU) is cached.</summary>
    private static string Slot(string sha, Device? device) =>
        device is null || device.type == DeviceType.CPU ? sha : sha + "@" + device;

    /// <summary>Makes an in-memory model on <paramref name="device"/> available under its bundle hash (a freshly fitted model does not reload itself).</summary>
    public static void Register(string sha, object model, Device? device = null) => s_loaded[Slot(sha, device)] = new Lazy<object>(model);

    /// <summary>Forgets every loaded model (benchmarks measure cold loads with it).</summary>
    public static void Clear() => s_loaded.Clear();

    /// <summary>How many rows received the non-empty weight vector of bundle <paramref name="sha"/> (tests).</summary>
    internal static int Deliveries(string sha) => s_deliveries.GetValueOrDefault(sha);

    private static bool TryGetLoaded(string slot, out object model)
    {
        if (s_loaded.TryGetValue(slot, out var lazy) && lazy.IsValueCreated)
        {
            model = lazy.Value;
            return true;
        }
        model = null!;
        return false;
    }

    /// <summary>The ValueMapping key for a row of the model whose bundle hash is <paramref name="sha"/>, run on <paramref name="device"/>.</summary>
    public static string KeyFor(string sha, Device? device = null)
    {
        string slot = Slot(sha, device);
        if (TryGetLoaded(slot, out var model))
        {
            (t_pinned ??= new Dictionary<string, object>(StringComparer.Ordinal))[slot] = model;
            return string.Empty; // not in the ValueMapping: the row gets an empty vector
        }
        t_pinned?.Remove(slot);
        return WeightsKey;
    }

    /// <summary>
    /// The model of bundle <paramref name="sha"/> on <paramref name="device"/> (null: the CPU): loaded from
    /// <paramref name="bundle"/> by <paramref name="load"/> when the row carries the weights and the model is not loaded
    /// yet, else the cached or pinned one.
    /// </summary>
    public static T Resolve<T>(string sha, in VBuffer<byte> bundle, BundleLoader<T> load, string what, Device? device = null) where T : class
    {
        string slot = Slot(sha, device);
        object? pinned = null;
        t_pinned?.Remove(slot, out pinned);
        if (bundle.Length > 0)
        {
            s_deliveries.AddOrUpdate(sha, 1, (_, n) => n + 1);
            if (bundle.GetValues().Length != bundle.Length)
                throw new InvalidDataException($"The {what}'s weights are stored as a sparse vector: the model file is corrupted.");
            var weights = bundle; // the struct, not the bytes: read in place by the loader, synchronously
            return GetOrLoad(slot, () => load(weights.GetValues()));
        }
        if (TryGetLoaded(slot, out var cached)) return (T)cached;
        if (pinned is not null) return (T)pinned;
        throw new InvalidDataException($"The {what} model holds no weights.");
    }

    /// <summary>Loads (once per process and slot; concurrent callers wait for the one load) or returns the cached model.</summary>
    private static T GetOrLoad<T>(string slot, Func<T> load) where T : class =>
        (T)s_loaded.GetOrAdd(slot, _ => new Lazy<object>(() => load(), LazyThreadSafetyMode.ExecutionAndPublication)).Value;

    /// <summary>The loaded model of bundle <paramref name="sha"/> on <paramref name="device"/>, if any (tests).</summary>
    internal static object? Loaded(string sha, Device? device = null) => TryGetLoaded(Slot(sha, device), out var model) ? model : null;

    /// <summary>Checks <paramref name="bytes"/> against the recorded hash before anything reads them.</summary>
    public static void CheckHash(ReadOnlySpan<byte> bytes, string expectedSha, string what)
    {
        if (bytes.Length == 0) throw new InvalidDataException($"The {what} model holds no weights.");
        var sha = ScorerBundle.Sha256(bytes);
        if (sha != expectedSha)
            throw new InvalidDataException($"The {what}'s weights do not match their recorded hash (got {sha}, expected {expectedSha}): the model file is corrupted.");
    }
}
