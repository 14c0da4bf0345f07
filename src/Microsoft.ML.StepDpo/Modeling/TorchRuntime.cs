using System.Runtime.InteropServices;
using TorchSharp;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>Loads TorchSharp's native backend once and turns a failed load into an actionable error.</summary>
internal static class TorchRuntime
{
    private static readonly Lazy<string> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Makes sure the native backend is loaded; returns the libtorch version.</summary>
    public static string EnsureLoaded() => Loaded.Value;

    private static string Load()
    {
        try
        {
            using var probe = torch.zeros(1);
            return torch.__version__;
        }
        catch (Exception e) when (e is TypeInitializationException or NotSupportedException or DllNotFoundException)
        {
            throw new InvalidOperationException(Diagnose(), e);
        }
    }

    private static string Diagnose()
    {
        var msg = "TorchSharp's native backend could not be loaded. Reference a backend package in your application " +
                  "(TorchSharp-cpu, or a TorchSharp CUDA bundle).";
        if (!OperatingSystem.IsLinux()) return msg;
        var lib = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).FirstOrDefault();
        if (lib is null) return msg;
        try
        {
            // dlopen directly to surface the loader's own message (e.g. "version `GLIBCXX_3.4.32' not found").
            NativeLibrary.Free(NativeLibrary.Load(lib));
            return msg;
        }
        catch (Exception e)
        {
            var text = $"{msg} Loading {lib} failed: {e.Message}";
            if (e.Message.Contains("GLIBCXX_3.4.32", StringComparison.Ordinal))
                text += " This host's libstdc++ predates GCC 13. Microsoft.ML.StepDpo's build step marks that requirement weak " +
                        "after the native files are copied to the output folder; make sure it ran (StepDpoPatchTorchSharpNative is not false).";
            return text;
        }
    }
}
