using TorchSharp;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>Chooses the TorchSharp device the way ML.NET's own TorchSharp components do.</summary>
internal static class TorchDevice
{
    private static readonly AsyncLocal<torch.Device?> s_override = new();

    /// <summary>
    /// Until disposed, <see cref="Select"/> returns <paramref name="device"/> in this flow of execution (and the threads and
    /// tasks it starts), whatever the MLContext says. For tests: TorchSharp's <c>meta</c> device (shapes, no data) shows a
    /// tensor created on the CPU by failing the first operation that mixes it with the model's tensors, without a GPU.
    /// </summary>
    internal static IDisposable Override(torch.Device device)
    {
        var previous = s_override.Value;
        s_override.Value = device;
        return new Restore(() => s_override.Value = previous);
    }

    private sealed class Restore(Action action) : IDisposable
    {
        private Action? pending = action;
        public void Dispose() => Interlocked.Exchange(ref pending, null)?.Invoke();
    }

    /// <summary>
    /// CPU unless <see cref="MLContext.GpuDeviceId"/> is set; then CUDA device N when a CUDA backend is
    /// loaded, else CPU if <see cref="MLContext.FallbackToCpu"/> allows it, else an error.
    /// </summary>
    public static torch.Device Select(MLContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (s_override.Value is { } forced)
            return forced;
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
