using TorchSharp;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>Chooses the TorchSharp device the way ML.NET's own TorchSharp components do.</summary>
internal static class TorchDevice
{
    /// <summary>
    /// CPU unless <see cref="MLContext.GpuDeviceId"/> is set; then CUDA device N when a CUDA backend is
    /// loaded, else CPU if <see cref="MLContext.FallbackToCpu"/> allows it, else an error.
    /// </summary>
    public static torch.Device Select(MLContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.GpuDeviceId is not int id)
            return torch.CPU;
        if (torch.cuda.is_available() && id >= 0 && id < torch.cuda.device_count())
            return new torch.Device(DeviceType.CUDA, id);
        if (context.FallbackToCpu)
            return torch.CPU;
        throw new InvalidOperationException(
            $"MLContext.GpuDeviceId is {id} but no such CUDA device is available (is a TorchSharp CUDA backend referenced?). " +
            "Set MLContext.FallbackToCpu = true to run on the CPU instead.");
    }
}
