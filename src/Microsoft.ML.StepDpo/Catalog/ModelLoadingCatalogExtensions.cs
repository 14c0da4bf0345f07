using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Scoring;

namespace Microsoft.ML.StepDpo;

/// <summary>Loading a saved Step-DPO model onto the device of <c>mlContext.StepDpo()</c>'s context.</summary>
public static class ModelLoadingCatalogExtensions
{
    /// <summary>
    /// <c>mlContext.Model.Load</c> for a zip saved by this library (a step scorer, a text generator, or a chain that holds
    /// them), with the models placed on the context's device: CUDA device <see cref="MLContext.GpuDeviceId"/> when it is
    /// set and available, else the CPU when <see cref="MLContext.FallbackToCpu"/> allows it, else an error here, at load.
    /// A plain <c>mlContext.Model.Load</c> gives the same transformer on the CPU: ML.NET does not tell a custom mapping
    /// which context loads it. The weights are still read at the first row.
    /// </summary>
    /// <param name="catalog">The Step-DPO catalog; its context loads the model and chooses the device.</param>
    /// <param name="filePath">The zip written by <c>mlContext.Model.Save</c>.</param>
    /// <param name="inputSchema">The input schema saved with the model, if any.</param>
    public static ITransformer LoadModel(this StepDpoCatalog catalog, string filePath, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrWhiteSpace(filePath);
        using var device = UseContextDevice(catalog);
        return catalog.Context.Model.Load(filePath, out inputSchema);
    }

    /// <summary><see cref="LoadModel(StepDpoCatalog, string, out DataViewSchema)"/> from a stream.</summary>
    /// <param name="catalog">The Step-DPO catalog; its context loads the model and chooses the device.</param>
    /// <param name="stream">The zip written by <c>mlContext.Model.Save</c>.</param>
    /// <param name="inputSchema">The input schema saved with the model, if any.</param>
    public static ITransformer LoadModel(this StepDpoCatalog catalog, Stream stream, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(stream);
        using var device = UseContextDevice(catalog);
        return catalog.Context.Model.Load(stream, out inputSchema);
    }

    private static IDisposable UseContextDevice(StepDpoCatalog catalog)
    {
        TorchRuntime.EnsureLoaded();
        return LoadedModelDevice.Use(TorchDevice.Select(catalog.Context));
    }
}
