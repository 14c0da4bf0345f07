using Microsoft.ML.Runtime;
using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Modeling;
using TorchSharp;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// Base of this library's trainers (<see cref="StepDpoTrainer"/>, <see cref="SftTrainer"/>). <see cref="Fit"/> checks the
/// input schema with <see cref="GetOutputSchema"/>, loads TorchSharp's native library, applies
/// <see cref="LanguageModelTrainerOptions.Threads"/>, takes <see cref="LanguageModelTrainerOptions.Seed"/> (or draws one
/// from the MLContext), logs through the MLContext, trains, and leaves a <see cref="LastReport"/>. For the whole of
/// <see cref="Fit"/> it holds an operating-system lock on <see cref="LanguageModelTrainerOptions.CheckpointDirectory"/>
/// (or, without one, on <see cref="LanguageModelTrainerOptions.MetricsPath"/>): a second Fit writing there, in this or
/// another process, is refused at once naming the holder's process id.
/// </summary>
/// <typeparam name="TTransformer">What <see cref="Fit"/> returns.</typeparam>
public abstract class LanguageModelTrainer<TTransformer> : IEstimator<TTransformer> where TTransformer : class, ITransformer
{
    private readonly LanguageModelTrainerOptions _options;

    private protected LanguageModelTrainer(MLContext context, LanguageModelTrainerOptions options)
    {
        Context = context ?? throw new ArgumentNullException(nameof(context));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        options.CheckBaseModel();
    }

    private protected MLContext Context { get; }

    /// <summary>
    /// What the last successful <see cref="Fit"/> did: rows used and left out, optimizer steps, and the metric history
    /// (TRL names). Null before the first <see cref="Fit"/> and after one that threw.
    /// </summary>
    public TrainingReport? LastReport { get; private set; }

    /// <summary>
    /// Checks that the training columns exist and are text (otherwise throws <see cref="ArgumentOutOfRangeException"/>
    /// naming the column, as ML.NET does) and returns the input plus the columns the fitted transformer adds.
    /// </summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        CheckInputs(SchemaChecks.For(inputSchema));
        return WithOutputColumns(inputSchema);
    }

    /// <summary>Trains on <paramref name="input"/> and returns the fitted transformer.</summary>
    public TTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        CheckInputs(SchemaChecks.For(input.Schema));
        LastReport = null;
        var host = ((IHostEnvironment)Context).Register(GetType().Name);
        using var ch = host.Start("Training");
        // One writer for the whole run (the optimizer loop and everything written after it), not only the loop.
        using var writer = TakeOutputLock();
        TorchRuntime.EnsureLoaded();
        if (_options.Threads is int threads) torch.set_num_threads(threads);
        var run = new TrainingRun(Context, _options, Method, _options.Seed ?? host.Rand.Next(), m => ch.Info(MessageSensitivity.None, m));
        var fitted = Train(input, run);
        LastReport = run.ToReport();
        return fitted;
    }

    // The checkpoint folder when there is one, else the metrics file; null when the run writes neither.
    private OutputLock? TakeOutputLock() =>
        _options.CheckpointDirectory is not null ? OutputLock.ForFolder(_options.CheckpointDirectory, "The checkpoint folder")
        : _options.MetricsPath is not null ? OutputLock.ForFile(_options.MetricsPath, "The metrics file")
        : null;

    /// <summary>The method's name as a checkpoint records it (e.g. "Step-DPO").</summary>
    private protected abstract string Method { get; }

    /// <summary>Throws unless the training columns exist with the right types.</summary>
    private protected abstract void CheckInputs(SchemaChecks columns);

    /// <summary><paramref name="inputSchema"/> plus the columns the fitted transformer adds.</summary>
    private protected abstract SchemaShape WithOutputColumns(SchemaShape inputSchema);

    /// <summary>The trainer's own part of <see cref="Fit"/>: read the rows, build the examples, train, wrap the model.</summary>
    private protected abstract TTransformer Train(IDataView input, TrainingRun run);
}
