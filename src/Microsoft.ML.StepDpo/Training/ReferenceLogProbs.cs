using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// Reference-model log-probabilities computed once before training (πref is frozen, so they never
/// change): one forward pass over the data instead of one per step, and no second model in memory.
/// </summary>
internal sealed class ReferenceLogProbs
{
    private readonly double[] _chosen, _rejected;

    private ReferenceLogProbs(double[] chosen, double[] rejected) { _chosen = chosen; _rejected = rejected; }

    public int Count => _chosen.Length;

    /// <summary>A cache of known values (tests, and runs that computed them elsewhere).</summary>
    internal static ReferenceLogProbs FromValues(double[] chosen, double[] rejected)
    {
        if (chosen.Length != rejected.Length) throw new ArgumentException("One chosen and one rejected value per pair.");
        return new ReferenceLogProbs((double[])chosen.Clone(), (double[])rejected.Clone());
    }

    /// <summary>Computes log πref for every pair, in batches, with the model's reference view (adapters off under LoRA).</summary>
    public static ReferenceLogProbs Compute(ICausalLanguageModel model, IReadOnlyList<TokenizedPair> pairs, int batchSize, bool prefixSharing,
        IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        var chosen = new double[pairs.Count];
        var rejected = new double[pairs.Count];
        model.SetTraining(false);
        for (int start = 0; start < pairs.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = pairs.Skip(start).Take(batchSize).ToArray();
            var (c, r) = Forward(model, batch, prefixSharing, reference: true);
            Array.Copy(c, 0, chosen, start, c.Length);
            Array.Copy(r, 0, rejected, start, r.Length);
            progress?.Report(start + batch.Length);
        }
        return new ReferenceLogProbs(chosen, rejected);
    }

    /// <summary>No-grad summed log-probs of a batch, from the model's πref view (adapters off under LoRA) or the model as it is.</summary>
    public static (double[] Chosen, double[] Rejected) Forward(ICausalLanguageModel model, IReadOnlyList<TokenizedPair> batch, bool prefixSharing, bool reference)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var layout = prefixSharing ? PreferenceBatch.BuildPrefixShared(batch) : PreferenceBatch.BuildConcatenated(batch);
        (double[], double[]) Run()
        {
            var (ids, pos, mask) = layout.ToTensors(model.Device);
            var hidden = model.ForwardHidden(ids, pos, mask);
            var (lp, _, _) = ResponseLogProbs.Compute(hidden, layout, model.ProjectToLogits);
            return (ToDoubles(lp.Chosen), ToDoubles(lp.Rejected));
        }
        return reference ? model.WithReference(Run) : Run();
    }

    /// <summary>The cached values of the given pairs as tensors of <paramref name="dtype"/>.</summary>
    public (Tensor Chosen, Tensor Rejected) Select(IReadOnlyList<int> indices, ScalarType dtype, Device device)
    {
        var c = indices.Select(i => _chosen[i]).ToArray();
        var r = indices.Select(i => _rejected[i]).ToArray();
        return (torch.tensor(c, dtype: ScalarType.Float64, device: device).to(dtype), torch.tensor(r, dtype: ScalarType.Float64, device: device).to(dtype));
    }

    private static double[] ToDoubles(Tensor t) => t.to(ScalarType.Float64).cpu().data<double>().ToArray();
}
