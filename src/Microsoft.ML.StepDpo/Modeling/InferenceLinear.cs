using System.Buffers;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// <c>F.linear</c> for the model's projections, with a CPU fast path for decoding bf16 models: when no
/// gradient is recorded and only a few rows go through a bf16 weight, <see cref="Bf16MatVec"/> streams the
/// weight once across torch's thread count instead of libtorch's bf16 GEMM, which on CPUs without bf16
/// instructions (no AVX512-BF16/AMX) is emulated and compute-bound. Same math: bf16 inputs, fp32
/// accumulation, bias added in fp32, one rounding to bf16 — only the summation order differs, so an output
/// can differ from torch's by one bf16 ulp when its fp32 sum lies within rounding error of a tie.
/// </summary>
internal static class InferenceLinear
{
    /// <summary>
    /// Most rows (batch × new tokens) that take the kernel. Each weight block is widened once and reused
    /// for up to four rows, so the cost grows with rows much more slowly than the weight traffic it saves;
    /// past a few dozen rows libtorch's blocked GEMM is the better tool (and prefill/training shapes stay on it).
    /// </summary>
    internal const int MaxKernelRows = 32;

    /// <summary>Below this many weight bytes one thread does the whole product (a hand-off costs more).</summary>
    private const long ParallelMinBytes = 64 * 1024;

    /// <summary>Work items per thread, so a thread slowed by other load does not hold up the step.</summary>
    private const int ChunksPerThread = 8;

    /// <summary>Process-wide switch: false sends every call to <c>F.linear</c> (tests and benchmarks compare both).</summary>
    internal static bool Bf16KernelEnabled { get; set; } = true;

    // Threads for the kernel while a SmallStepScope is open on this thread (0: torch's thread count).
    [ThreadStatic] private static int scopeThreads;

    /// <summary>
    /// For a loop of small steps (decoding a few rows): torch's intra-op threads are set to one on this thread,
    /// while the bf16 kernel keeps the previous count. The elementwise ops, attention and norms of a decoding
    /// step touch a few kilobytes each; handing each to a worker thread (an OpenMP region per op, several per
    /// layer) costs more than the op, and on a loaded machine a sleeping worker can take milliseconds to wake.
    /// Only the weight streaming is worth parallelizing, and the kernel does that itself. Dispose restores both.
    /// </summary>
    internal static IDisposable SmallStepScope()
    {
        int torchThreads = torch.get_num_threads(), savedScope = scopeThreads;
        scopeThreads = savedScope > 0 ? savedScope : torchThreads;
        torch.set_num_threads(1);
        return new Restore(() =>
        {
            torch.set_num_threads(torchThreads);
            scopeThreads = savedScope;
        });
    }

    private sealed class Restore(Action action) : IDisposable
    {
        private Action? pending = action;
        public void Dispose() => Interlocked.Exchange(ref pending, null)?.Invoke();
    }

    /// <summary>x·Wᵀ + b for x [..., K], W [N, K], b [N]: the bf16 kernel when <see cref="UsesKernel"/>, else <c>F.linear</c>.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias) =>
        UsesKernel(x, weight, bias) ? Bf16Linear(x, weight, bias) : F.linear(x, weight, bias);

    /// <summary>Whether a model of this dtype on this device decodes through the kernel (when the switch is on).</summary>
    internal static bool AppliesTo(ScalarType dtype, Device device) =>
        Bf16KernelEnabled && dtype == ScalarType.BFloat16 && device.type == DeviceType.CPU;

    /// <summary>Whether <see cref="Linear"/> takes the bf16 kernel for these operands.</summary>
    internal static bool UsesKernel(Tensor x, Tensor weight, Tensor? bias)
    {
        if (!Bf16KernelEnabled || torch.is_grad_enabled()) return false;
        if (x.dtype != ScalarType.BFloat16 || weight.dtype != ScalarType.BFloat16 || (bias is not null && bias.dtype != ScalarType.BFloat16)) return false;
        if (x.device_type != DeviceType.CPU || weight.device_type != DeviceType.CPU || (bias is not null && bias.device_type != DeviceType.CPU)) return false;
        if (weight.dim() != 2 || x.dim() < 1 || !weight.is_contiguous()) return false;
        long k = weight.shape[1], n = weight.shape[0];
        if (x.shape[^1] != k || k == 0 || n == 0 || (bias is not null && (bias.dim() != 1 || bias.shape[0] != n))) return false;
        long rows = x.numel() / k;
        return rows >= 1 && rows <= MaxKernelRows && weight.numel() * 2 <= int.MaxValue;
    }

    private static Tensor Bf16Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        int k = (int)weight.shape[1], n = (int)weight.shape[0];
        int rows = (int)(x.numel() / k);
        using var xc = x.contiguous();
        var y = torch.empty(x.shape.Take(x.shape.Length - 1).Append(n).ToArray(), dtype: ScalarType.BFloat16);
        var arranged = ArrayPool<float>.Shared.Rent(rows * k);
        var b = bias is null ? null : ArrayPool<float>.Shared.Rent(n);
        try
        {
            Bf16MatVec.Arrange(MemoryMarshal.Cast<byte, ushort>(xc.bytes), rows, k, arranged);
            if (bias is not null)
            {
                using var bc = bias.contiguous();
                var bits = MemoryMarshal.Cast<byte, ushort>(bc.bytes);
                for (int i = 0; i < n; i++) b![i] = Bf16MatVec.ToFloat(bits[i]);
            }
            int threads = weight.numel() * 2 < ParallelMinBytes ? 1 : Math.Max(1, scopeThreads > 0 ? scopeThreads : torch.get_num_threads());
            if (threads == 1)
            {
                Bf16MatVec.Rows(MemoryMarshal.Cast<byte, ushort>(weight.bytes), k, arranged.AsSpan(0, rows * k), rows,
                    b is null ? default : b.AsSpan(0, n), MemoryMarshal.Cast<byte, ushort>(y.bytes), n, 0, n);
            }
            else
            {
                int chunks = Math.Min(n, threads * ChunksPerThread), next = 0;
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ =>
                {
                    // Spans cannot cross into the worker lambda; each worker takes its own views of the native buffers.
                    var w = MemoryMarshal.Cast<byte, ushort>(weight.bytes);
                    var outBits = MemoryMarshal.Cast<byte, ushort>(y.bytes);
                    var xs = arranged.AsSpan(0, rows * k);
                    var bs = b is null ? default : b.AsSpan(0, n);
                    for (int c; (c = Interlocked.Increment(ref next) - 1) < chunks;)
                        Bf16MatVec.Rows(w, k, xs, rows, bs, outBits, n, (int)((long)n * c / chunks), (int)((long)n * (c + 1) / chunks));
                });
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(arranged);
            if (b is not null) ArrayPool<float>.Shared.Return(b);
        }
        return y;
    }
}
