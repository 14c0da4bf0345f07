using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>The starting model of a trainer: a copy of an in-memory model (never modified), or a Hugging Face folder.</summary>
internal static class BaseModelLoader
{
    public static (Qwen2ForCausalLM Model, ByteLevelBpeTokenizer Tokenizer) Load(MLContext context, string? path, Qwen2ForCausalLM? model, ByteLevelBpeTokenizer? tokenizer)
    {
        if (model is not null)
        {
            if (tokenizer is null) throw new InvalidOperationException("An in-memory base model needs its tokenizer.");
            ModelFolder.CheckVocabulary(model.Config.VocabSize, tokenizer, "(in memory)", "(in memory)");
            return (StepDpoTrainer.Clone(model, TorchDevice.Select(context)), tokenizer);   // the MLContext's device, like a loaded folder
        }
        if (path is null) throw new InvalidOperationException("Set BaseModelPath to a Hugging Face model folder.");
        if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"Base model folder '{path}' does not exist.");
        return ModelFolder.Load(path, device: TorchDevice.Select(context));
    }
}
