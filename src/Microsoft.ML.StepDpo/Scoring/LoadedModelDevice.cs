using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Scoring;

/// <summary>
/// The device that the models of a saved Step-DPO zip go to when it is loaded through
/// <c>mlContext.StepDpo().LoadModel</c>. ML.NET creates a custom mapping from its contract name alone, with no access
/// to the <see cref="MLContext"/> that loads it (its own TorchSharp transforms read the context through internal
/// interfaces), so the loader names the device here, for the calling thread, around <c>mlContext.Model.Load</c>, which
/// creates the mappings synchronously on that thread; each mapping keeps the device it saw. Outside such a load
/// (a plain <c>mlContext.Model.Load</c>) there is none, and the models run on the CPU.
/// </summary>
internal static class LoadedModelDevice
{
    [ThreadStatic] private static Device? t_device;

    /// <summary>The device named for the load in progress on this thread; null outside one.</summary>
    public static Device? Current => t_device;

    /// <summary>Names <paramref name="device"/> for the mappings created on this thread until disposed.</summary>
    public static IDisposable Use(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var previous = t_device;
        t_device = device;
        return new Restore(previous);
    }

    private sealed class Restore(Device? previous) : IDisposable
    {
        public void Dispose() => t_device = previous;
    }
}
