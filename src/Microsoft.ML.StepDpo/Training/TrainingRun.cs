using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// One <c>Fit</c> of a <see cref="LanguageModelTrainer{TTransformer}"/>: its settings, seed and log, the steps every trainer
/// takes (load the base model, count the examples, run the optimizer loop) and what they found, for the <see cref="TrainingReport"/>.
/// </summary>
internal sealed class TrainingRun
{
    private int _rows, _used, _empty, _tooLong, _promptsTruncated, _responsesTruncated;
    private TrainingLoopResult _loop = new(0, 0, Array.Empty<Dictionary<string, double>>());

    public TrainingRun(MLContext context, LanguageModelTrainerOptions options, string method, int seed, Action<string> log)
    {
        Method = method;
        Context = context;
        Options = options;
        Seed = seed;
        Log = log;
    }

    public MLContext Context { get; }
    /// <summary>The trainer's method ("Step-DPO", "DPO", "SFT"), recorded in checkpoints.</summary>
    public string Method { get; }
    public LanguageModelTrainerOptions Options { get; }
    /// <summary>The seed of data order and dropout: <see cref="LanguageModelTrainerOptions.Seed"/>, or one drawn from the MLContext.</summary>
    public int Seed { get; }
    /// <summary>Writes an informational message to the MLContext's log.</summary>
    public Action<string> Log { get; }

    /// <summary>The starting model (a copy of an in-memory one, or loaded on the MLContext's device), with LoRA adapters when asked.</summary>
    public (Qwen2ForCausalLM Model, ByteLevelBpeTokenizer Tokenizer) LoadBaseModel()
    {
        var (model, tokenizer) = BaseModelLoader.Load(Context, Options.BaseModelPath, Options.BaseModel, Options.BaseTokenizer);
        if (Options.UseLora) LoraAdapters.Apply(model, Options.Lora.ToInternal());
        model.GradientCheckpointing = Options.GradientCheckpointing;
        return (model, tokenizer);
    }

    /// <summary>Records how many rows became examples and why the others did not; logs it; throws when none is left.</summary>
    public void CountExamples(int rows, int used, int empty, int tooLong, int promptsTruncated = 0, int responsesTruncated = 0)
    {
        (_rows, _used, _empty, _tooLong, _promptsTruncated, _responsesTruncated) = (rows, used, empty, tooLong, promptsTruncated, responsesTruncated);
        string summary = $"{used}/{rows} rows used; {empty} empty, {tooLong} longer than {Options.MaxLength} tokens" +
                         (promptsTruncated + responsesTruncated > 0 ? $"; {promptsTruncated} prompts and {responsesTruncated} responses truncated." : ".");
        Log(summary);
        if (used == 0) throw new InvalidOperationException($"No usable training rows: {summary}");
    }

    /// <summary>The optimizer loop over <paramref name="examples"/> with the options' schedule, checkpoints and metrics.</summary>
    public void Optimize<TExample>(ICausalLanguageModel model, ITrainingObjective<TExample> objective, IReadOnlyList<TExample> examples)
    {
        var loopOptions = Options.ToLoopOptions(Seed, Log);
        if (loopOptions.CheckpointDirectory is not null)
        {
            loopOptions.CallerHoldsOutputLock = true; // Fit holds it for the whole run
            loopOptions.RunIdentity = RunIdentity();
        }
        var loop = new TrainingLoop<TExample>(model, objective, loopOptions);
        loop.Run(examples);
        _loop = new TrainingLoopResult(loop.StepsDone, loop.ResumedFromStep, loop.History);
    }

    // What a checkpoint of this run records besides the loop's settings and data: the method, the base model and the options.
    // A base folder's hash is remembered per user by its files' sizes and times (FileHashCache), so a multi-GB base is
    // read once, not at every Fit.
    private List<KeyValuePair<string, string>> RunIdentity()
    {
        var items = new List<KeyValuePair<string, string>> { new("method", Method) };
        items.Add(new("base model sha256", Options.BaseModel is { } inMemory ? ModelHash.OfWeights(inMemory) : Scoring.FileHashCache.OfFolder(Options.BaseModelPath!)));
        items.AddRange(Options.MathSettings());
        return items;
    }

    public TrainingReport ToReport() => new(_rows, _used, _empty, _tooLong, _promptsTruncated, _responsesTruncated,
        _loop.Steps, _loop.ResumedFrom, _loop.History.Select(r => (IReadOnlyDictionary<string, double>)new Dictionary<string, double>(r)));

    private sealed record TrainingLoopResult(int Steps, int ResumedFrom, IReadOnlyList<Dictionary<string, double>> History);
}
