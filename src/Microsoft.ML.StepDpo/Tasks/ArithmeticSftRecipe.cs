using System.Globalization;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Training;
using TorchSharp;

namespace Microsoft.ML.StepDpo.Tasks;

/// <summary>Everything that decides the SFT model of the built-in task (the demo's starting point).</summary>
internal sealed class ArithmeticSftSettings
{
    /// <summary>Task difficulty. Default <see cref="ArithmeticSftRecipe.DemoTask"/>.</summary>
    public ArithmeticTaskOptions Task { get; set; } = ArithmeticSftRecipe.DemoTask;
    /// <summary>Distinct training problems (one pass each per epoch). Default 35,000 (about 5.8M tokens).</summary>
    public int TrainProblems { get; set; } = 35_000;
    /// <summary>Model width. Default 128 (with the defaults below: about 0.8M parameters).</summary>
    public int HiddenSize { get; set; } = 128;
    /// <summary>Decoder layers. Default 4.</summary>
    public int Layers { get; set; } = 4;
    /// <summary>Attention heads. Default 4.</summary>
    public int Heads { get; set; } = 4;
    /// <summary>Key/value heads (grouped-query attention). Default 2.</summary>
    public int KeyValueHeads { get; set; } = 2;
    /// <summary>SwiGLU width. Default 384.</summary>
    public int IntermediateSize { get; set; } = 384;
    /// <summary>Continue from this Hugging Face folder instead of random weights (its shape wins over the size settings). Default null.</summary>
    public string? InitialModel { get; set; }
    /// <summary>Seed of the problems, the initial weights and the data order.</summary>
    public int Seed { get; set; } = 1;
    /// <summary>Where the model is created and trained (default: the CPU).</summary>
    public TorchSharp.torch.Device? Device { get; set; }
    /// <summary>Optimizer settings (its seed is overwritten with <see cref="Seed"/>). Defaults: 1 epoch, lr 3e-3, 2048 tokens per step.</summary>
    public SftRunOptions Sft { get; set; } = new() { LearningRate = 3e-3, TokensPerBatch = 2048 };
}

/// <summary>
/// The SFT recipe of the built-in arithmetic task: a character-level tokenizer over the task's alphabet (plus EOS
/// and padding), a small Qwen2 trained from scratch on gold solutions followed by EOS, and the prompt format
/// shared by every stage: the question, a newline, then the solution ("Let's think step by step.\nStep 1: …").
/// </summary>
internal static class ArithmeticSftRecipe
{
    /// <summary>The prompt format of every stage on the built-in task: "{question}\n" + reasoning steps.</summary>
    public static PromptTemplate Prompt => PromptTemplate.Plain;

    /// <summary>The demo's difficulty (see <see cref="ArithmeticTaskOptions.Demo"/> and docs/demo.md).</summary>
    public static ArithmeticTaskOptions DemoTask => ArithmeticTaskOptions.Demo;

    /// <summary>One token per character of the task's alphabet, then EOS and padding.</summary>
    public static ByteLevelBpeTokenizer CreateTokenizer() => CharacterTokenizer.Create(new string(ArithmeticTask.Alphabet.ToArray()));

    /// <summary>Prompt tokens (question + separator) and response tokens (the gold solution + EOS).</summary>
    public static TokenizedSequence Tokenize(ByteLevelBpeTokenizer tokenizer, ArithmeticProblem problem)
    {
        string prompt = Prompt.Build(problem.Question, null) + Prompt.Separator;
        int[] promptIds = tokenizer.Encode(prompt);
        int[] fullIds = tokenizer.Encode(prompt + problem.Solution);
        if (fullIds.Length != prompt.Length + problem.Solution.Length)
            throw new InvalidOperationException($"Problem '{problem.Id}' has characters the tokenizer does not know.");
        int eos = tokenizer.EosId ?? throw new InvalidOperationException("The tokenizer has no EOS token.");
        return new TokenizedSequence([.. fullIds, eos], promptIds.Length);
    }

    /// <summary>The model shape for <paramref name="settings"/> and a tokenizer.</summary>
    public static Qwen2Config ModelConfig(ArithmeticSftSettings settings, ByteLevelBpeTokenizer tokenizer) =>
        Qwen2Config.Tiny(vocab: tokenizer.VocabularySize, hidden: settings.HiddenSize, layers: settings.Layers,
            heads: settings.Heads, kvHeads: settings.KeyValueHeads, intermediate: settings.IntermediateSize) with
        {
            EosTokenId = tokenizer.EosId,
            MaxPositionEmbeddings = 1024,
        };

    /// <summary>The training problems of a seed.</summary>
    public static IReadOnlyList<ArithmeticProblem> TrainingProblems(ArithmeticSftSettings settings) =>
        ArithmeticTask.Generate(settings.Task, settings.TrainProblems, settings.Seed, TaskSplit.Train);

    /// <summary>Held-out problems as evaluation items (question, reference answer).</summary>
    public static IReadOnlyList<EvaluationProblem> HeldOut(ArithmeticTaskOptions task, int count, int seed) =>
        ForEvaluation(ArithmeticTask.Generate(task, count, seed, TaskSplit.HeldOut));

    /// <summary>Problems as evaluation items (question, reference answer).</summary>
    public static IReadOnlyList<EvaluationProblem> ForEvaluation(IEnumerable<ArithmeticProblem> problems) =>
        problems.Select(p => new EvaluationProblem(p.Question, p.Answer.ToString(CultureInfo.InvariantCulture))).ToList();

    /// <summary>Creates the model and trains it from scratch; the caller owns the returned model.</summary>
    /// <param name="settings">What to train.</param>
    /// <param name="tokenizer">From <see cref="CreateTokenizer"/>.</param>
    /// <param name="log">Receives progress lines.</param>
    /// <param name="onCreated">Called with the model before training starts (e.g. to evaluate it from a progress callback).</param>
    public static Qwen2ForCausalLM Train(ArithmeticSftSettings settings, ByteLevelBpeTokenizer tokenizer, Action<string>? log = null, Action<Qwen2ForCausalLM>? onCreated = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var problems = TrainingProblems(settings);
        var sequences = problems.Select(p => Tokenize(tokenizer, p)).ToList();
        log?.Invoke(string.Create(CultureInfo.InvariantCulture,
            $"{sequences.Count} training problems, {sequences.Sum(s => s.Ids.Length)} tokens ({sequences.Sum(s => s.Ids.Length - s.ResponseStart)} labelled) per epoch"));
        var model = settings.InitialModel is string init
            ? ModelCheckpoint.Load(init, device: settings.Device)
            : Qwen2ForCausalLM.CreateRandom(ModelConfig(settings, tokenizer), device: settings.Device, seed: settings.Seed);
        try
        {
            onCreated?.Invoke(model);
            torch.manual_seed(settings.Seed);
            settings.Sft.Seed = settings.Seed;
            SftRunner.Train(new Qwen2TrainingModel(model), sequences, settings.Sft);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Saves a Hugging Face folder: config.json, model.safetensors, tokenizer.json (+ tokenizer_config.json).</summary>
    public static void Save(Qwen2ForCausalLM model, ByteLevelBpeTokenizer tokenizer, string directory)
    {
        ModelCheckpoint.Save(model, directory);
        tokenizer.Save(directory);
    }

    /// <summary>Loads a folder written by <see cref="Save"/>.</summary>
    public static (Qwen2ForCausalLM Model, ByteLevelBpeTokenizer Tokenizer) Load(string directory) =>
        ModelFolder.Load(directory);
}
