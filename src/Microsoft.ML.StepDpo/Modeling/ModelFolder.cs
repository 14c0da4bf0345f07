using Microsoft.ML.StepDpo.Modeling.Tokenization;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>A Hugging Face model folder loaded as a pair: the tokenizer's ids are checked against the model's embedding first.</summary>
internal static class ModelFolder
{
    /// <summary>Reads the tokenizer and the config, checks they belong together, then loads the weights.</summary>
    public static (Qwen2ForCausalLM Model, ByteLevelBpeTokenizer Tokenizer) Load(string directory, ScalarType? dtype = null, Device? device = null)
    {
        var tokenizer = ByteLevelBpeTokenizer.FromDirectory(directory);
        string configPath = Path.Combine(directory, ModelCheckpoint.ConfigFile);
        if (File.Exists(configPath))
            CheckVocabulary(Qwen2Config.Load(configPath).VocabSize, tokenizer, $"'{configPath}'", $"'{Path.Combine(directory, "tokenizer.json")}'");
        return (ModelCheckpoint.Load(directory, dtype, device), tokenizer);
    }

    /// <summary>
    /// Throws when the tokenizer can produce ids the model has no embedding row for (which libtorch would report as an
    /// index out of range at the first such token).
    /// </summary>
    public static void CheckVocabulary(int vocabSize, ByteLevelBpeTokenizer tokenizer, string model, string tokenizerName)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (tokenizer.VocabularySize > vocabSize)
            throw new InvalidDataException(
                $"The tokenizer {tokenizerName} has ids up to {tokenizer.VocabularySize - 1}, but the model {model} has vocab_size {vocabSize}: " +
                $"ids {vocabSize}..{tokenizer.VocabularySize - 1} have no embedding row. Use the tokenizer that belongs to the model.");
    }
}
