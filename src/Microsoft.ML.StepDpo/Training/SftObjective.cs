using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>One supervised example: the tokens of prompt + response, and where the response starts.</summary>
internal sealed record TokenizedSequence(int[] Ids, int ResponseStart);

/// <summary>Supervised fine-tuning: mean negative log-likelihood of the response tokens (prompt tokens unlabelled).</summary>
internal sealed class SftObjective : ITrainingObjective<TokenizedSequence>
{
    public (Tensor Loss, Dictionary<string, double> Metrics, int Tokens) Compute(ICausalLanguageModel model, IReadOnlyList<TokenizedSequence> batch, IReadOnlyList<int> indices)
    {
        // A sequence is a "pair" whose two sides are the same; only side 0 is read.
        var layout = BuildLayout(batch);
        var (ids, pos, _) = layout.ToTensors(model.Device);
        var hidden = model.ForwardHidden(ids, pos, null);
        var (lp, _, _) = ResponseLogProbs.Compute(hidden, layout, model.ProjectToLogits);
        var loss = -(lp.Chosen.sum() / lp.ChosenTokens.sum());
        var metrics = new Dictionary<string, double> { ["loss"] = loss.detach().to(ScalarType.Float64).item<double>() };
        return (loss, metrics, layout.InputTokens);
    }

    internal static PreferenceBatch BuildLayout(IReadOnlyList<TokenizedSequence> batch)
    {
        if (batch.Count == 0) throw new ArgumentException("Empty batch.", nameof(batch));
        int t = batch.Max(s => s.Ids.Length);
        var idsArr = new long[batch.Count, t];
        var posArr = new long[batch.Count, t];
        var labels = new List<PreferenceBatch.LabelledToken>();
        int tokens = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            var s = batch[i];
            if (s.ResponseStart < 1 || s.ResponseStart >= s.Ids.Length)
                throw new ArgumentException($"Example {i} needs at least one prompt token and one response token.");
            for (int j = 0; j < t; j++) { idsArr[i, j] = j < s.Ids.Length ? s.Ids[j] : 0; posArr[i, j] = j; }
            for (int j = s.ResponseStart; j < s.Ids.Length; j++) labels.Add(new(i, j - 1, s.Ids[j], i, 0));
            tokens += s.Ids.Length;
        }
        return new PreferenceBatch { InputIds = idsArr, PositionIds = posArr, AttentionMask = null, Labels = labels.ToArray(), Pairs = batch.Count, InputTokens = tokens };
    }
}
