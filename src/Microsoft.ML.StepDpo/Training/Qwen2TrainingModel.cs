using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// The Qwen2 model as the training loops see it. With LoRA adapters on, only the adapters train and the
/// reference model is the same network with adapters disabled (no second copy in memory); without them,
/// every weight trains and πref is the model as it was before the first update (the loops use
/// precomputed πref log-probs or a separate frozen model for that case).
/// </summary>
internal sealed class Qwen2TrainingModel : ICausalLanguageModel
{
    public Qwen2TrainingModel(Qwen2ForCausalLM model)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
    }

    public Qwen2ForCausalLM Model { get; }

    public bool UsesAdapters => LoraAdapters.HasAdapters(Model);

    public Device Device => Model.Device;

    public Tensor ForwardHidden(Tensor inputIds, Tensor? positionIds, Tensor? attentionMask) =>
        Model.Hidden(inputIds, positionIds, attentionMask);

    public Tensor ProjectToLogits(Tensor hidden) => Model.Logits(hidden);

    public IEnumerable<Parameter> TrainableParameters()
    {
        if (UsesAdapters) return LoraAdapters.Parameters(Model);
        // Distinct by handle: a tied LM head is the embedding Parameter and must be updated once.
        var seen = new HashSet<IntPtr>();
        return Model.parameters().Where(p => seen.Add(p.Handle)).ToList();
    }

    public void SetTraining(bool training) => Model.train(training);

    public T WithReference<T>(Func<T> action)
    {
        if (!UsesAdapters) return action();
        using var _ = LoraAdapters.Disable(Model);
        return action();
    }

    public void SaveTrainableState(string path)
    {
        // Every parameter and buffer (adapters included) by name; small enough for the models trained here.
        using var scope = torch.NewDisposeScope();
        var tensors = Model.named_parameters()
            .GroupBy(p => p.name).Select(g => (g.Key, (Tensor)g.First().parameter.detach().cpu()));
        SafeTensors.Write(path, tensors);
    }

    public void LoadTrainableState(string path)
    {
        using var scope = torch.NewDisposeScope();
        using var reader = new SafeTensors.Reader(path);
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in Model.named_parameters())
        {
            if (!reader.Entries.ContainsKey(name))
                throw new InvalidDataException($"Checkpoint '{path}' has no tensor '{name}'.");
            reader.ReadInto(name, p);
        }
    }
}
