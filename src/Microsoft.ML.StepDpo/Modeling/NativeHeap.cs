using System.Runtime.InteropServices;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Keeps freed native memory in the process for reuse, on Linux with glibc. By default glibc maps every block of
/// more than 32 MiB afresh and trims the heap, so every training step page-faults its logits, log-softmax and
/// gradients in again. Measured on the 26M-parameter bench step (docs/benchmarks.md): page faults halved over a
/// bench run and training tokens/s up by about 14%, peak RSS unchanged. The price: the process keeps its peak
/// native heap until it exits.
/// </summary>
internal static class NativeHeap
{
    // mallopt parameters (glibc malloc.h).
    private const int TrimThreshold = -1, TopPad = -2, MmapMax = -4;

    /// <summary>Slack the heap grows by beyond each request. torch allocates with posix_memalign, which asks glibc
    /// (2.36) for a little more than the block it freed, so a freed block of the same size never fits; growing in
    /// large steps lets such requests come from the top of the heap instead (measured: steady state after ~5
    /// steps in every run, instead of some runs faulting every step).</summary>
    private const int TopPadBytes = 64 << 20;
    private static readonly object Gate = new();

    /// <summary>Whether <see cref="RetainFreedMemory"/> has taken effect in this process.</summary>
    public static bool Retaining { get; private set; }

    /// <summary>
    /// Process-wide: allocations no longer get their own mmap, the heap is never trimmed below 2 GiB of free
    /// space, and it grows 64 MiB beyond each request. Returns false (and changes nothing) where the C library is
    /// not glibc or the OS is not Linux.
    /// </summary>
    public static bool RetainFreedMemory()
    {
        lock (Gate)
        {
            if (Retaining || !OperatingSystem.IsLinux()) return Retaining;
            try
            {
                Retaining = Mallopt(MmapMax, 0) == 1 && Mallopt(TrimThreshold, int.MaxValue) == 1 && Mallopt(TopPad, TopPadBytes) == 1;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                Retaining = false;   // musl and other C libraries: keep their behaviour
            }
            return Retaining;
        }
    }

    /// <summary>
    /// A zero-filled CPU tensor whose memory Linux backs with 2 MiB pages where it can (madvise MADV_HUGEPAGE before
    /// the first touch): a fresh 20 MB key/value cache otherwise takes ~5,000 page faults to fill, which on this
    /// project's virtual machines cost more than the work done in it (measured: docs/benchmarks.md "Sampling"). The
    /// same zeros either way; elsewhere, or for small or non-CPU tensors, plain <c>torch.zeros</c>.
    /// </summary>
    public static TorchSharp.torch.Tensor Zeros(long[] shape, TorchSharp.torch.ScalarType dtype, TorchSharp.torch.Device device)
    {
        if (!OperatingSystem.IsLinux() || device.type != TorchSharp.DeviceType.CPU)
            return TorchSharp.torch.zeros(shape, dtype: dtype, device: device);
        var t = TorchSharp.torch.empty(shape, dtype: dtype, device: device);
        long bytes = t.numel() * t.ElementSize;
        if (bytes >= 4 * HugePage)
        {
            try
            {
                {
                    long start = Address(t);
                    long first = (start + HugePage - 1) / HugePage * HugePage, end = (start + bytes) / HugePage * HugePage;
                    if (end > first) Madvise((nint)first, (nuint)(end - first), MadvHugePage);
                }
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                // no madvise: small pages, as torch.zeros would have it
            }
        }
        return t.zero_();
    }

    /// <summary>The address of a CPU tensor's first element (its storage is native memory, so it holds while the tensor lives).</summary>
    public static unsafe nint Address(TorchSharp.torch.Tensor t) =>
        (nint)System.Runtime.CompilerServices.Unsafe.AsPointer(ref MemoryMarshal.GetReference(t.bytes));

    private const long HugePage = 2 << 20;
    private const int MadvHugePage = 14;

    [DllImport("libc", EntryPoint = "madvise")]
    private static extern int Madvise(nint address, nuint length, int advice);

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int Mallopt(int param, int value);
}
