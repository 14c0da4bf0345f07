using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

internal static class ModelTestUtil
{
    public static Qwen2Config Llama(int vocab = 48) => Qwen2Config.Tiny(vocab: vocab, tied: false) with { ModelType = "llama", AttentionBias = false, RopeTheta = 500000 };

    /// <summary>Makes every weight non-trivial (random biases, non-unit norms) so a comparison can catch wiring errors.</summary>
    public static void Scramble(nn.Module model, long seed, double std = 0.3)
    {
        using var _ = torch.no_grad();
        var gen = new Generator((ulong)seed);
        foreach (var (name, p) in model.named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.copy_(Num(1) + torch.randn(p.shape, generator: gen).to(p.dtype) * Num(0.1));
            else p.copy_((torch.randn(p.shape, generator: gen) * Num(std)).to(p.dtype));
        }
    }

    public static Dictionary<string, double[]> Weights(nn.Module model) =>
        model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().to(ScalarType.Float64).data<double>().ToArray());

    public static Tensor Ids(long[,] ids) => torch.tensor(ids, dtype: ScalarType.Int64);

    public static double MaxAbsDiff(Tensor a, Tensor b) => (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max().item<double>();
}

/// <summary>
/// Tiny models gain nothing from intra-op threads, and on a busy 2-core machine OpenMP hand-offs cost
/// milliseconds per op; model test classes run single-threaded and restore the setting afterwards.
/// </summary>
internal static class SingleThread
{
    private static int saved;
    public static void Enter() { saved = torch.get_num_threads(); torch.set_num_threads(1); }
    public static void Exit() => torch.set_num_threads(saved);
}
