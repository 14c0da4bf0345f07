using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using Microsoft.ML.StepDpo.Data;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// The optimizer loop shared by SFT, DPO and Step-DPO: seeded shuffling per epoch, micro-batches with
/// gradient accumulation, AdamW (no decay on biases and norms; fp32 master weights and state for a bf16/fp16 model,
/// see <see cref="MixedPrecisionAdamW"/>), gradient clipping, warmup + cosine
/// schedule, metrics, checkpoints that resume bit-identically, cancellation, and a stop on a non-finite loss.
/// </summary>
/// <remarks>
/// Determinism without saving RNG state: the data order of epoch e is a permutation drawn from (seed, e), and
/// torch's generator is reseeded from (seed, step, micro-batch) before every forward, so a resumed run replays
/// exactly the same random numbers as an uninterrupted one.
/// </remarks>
internal sealed class TrainingLoop<TExample>
{
    private readonly ICausalLanguageModel _model;
    private readonly ITrainingObjective<TExample> _objective;
    private readonly TrainingLoopOptions _options;

    public TrainingLoop(ICausalLanguageModel model, ITrainingObjective<TExample> objective, TrainingLoopOptions options)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _objective = objective ?? throw new ArgumentNullException(nameof(objective));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
    }

    /// <summary>Metric records, one per log interval (also written to <see cref="TrainingLoopOptions.MetricsPath"/>).</summary>
    public List<Dictionary<string, double>> History { get; } = new();

    /// <summary>Optimizer steps of the run done when <see cref="Run"/> returned (including those before a resume).</summary>
    public int StepsDone { get; private set; }

    /// <summary>The step the last <see cref="Run"/> resumed from (0: it started afresh).</summary>
    public int ResumedFromStep { get; private set; }

    public int TotalSteps(int examples)
    {
        int batches = (examples + _options.BatchSize - 1) / _options.BatchSize;
        int stepsPerEpoch = (batches + _options.GradientAccumulationSteps - 1) / _options.GradientAccumulationSteps;
        return stepsPerEpoch * _options.Epochs;
    }

    public void Run(IReadOnlyList<TExample> examples)
    {
        if (examples.Count == 0) throw new ArgumentException("No training examples.", nameof(examples));
        var o = _options;
        int batches = (examples.Count + o.BatchSize - 1) / o.BatchSize;
        int stepsPerEpoch = (batches + o.GradientAccumulationSteps - 1) / o.GradientAccumulationSteps;
        int total = stepsPerEpoch * o.Epochs;
        int warmup = CosineSchedule.WarmupSteps(total, o.WarmupRatio);

        if (o.RetainFreedNativeMemory) Modeling.NativeHeap.RetainFreedMemory();
        var trainable = _model.TrainableParameters().ToList();
        if (trainable.Count == 0) throw new InvalidOperationException("The model has no trainable parameters.");
        // bf16/fp16 parameters train through fp32 master weights; fp32 ones exactly as with a plain AdamW.
        using var optimizer = new MixedPrecisionAdamW(trainable, o.LearningRate, o.WeightDecay);

        // One run per checkpoint folder at a time (two would tear each other's checkpoints and metrics).
        using var writer = o.CheckpointDirectory is null || o.CallerHoldsOutputLock ? null : OutputLock.ForFolder(o.CheckpointDirectory, "The checkpoint folder");
        var identity = o.CheckpointDirectory is null ? new Dictionary<string, string>() : Identity(examples, total);
        // A checkpoint of a bf16 run from before master weights holds bf16 AdamW state and no masters: not resumable here.
        if (o.CheckpointDirectory is not null && optimizer.HasMasterWeights) identity["optimizer"] = MasterWeightsIdentity;
        if (o.RestartFromScratch) DiscardCheckpoint();
        int step = TryResume(optimizer, identity);
        ResumedFromStep = step;
        if (step > 0) o.Log?.Invoke($"Resumed from checkpoint at step {step}/{total}.");

        _model.SetTraining(true);
        using var metricsFile = o.MetricsPath is null ? null : new StreamWriter(o.MetricsPath, append: step > 0);
        var window = new MetricWindow();
        var clock = Stopwatch.StartNew();
        int[]? order = null;
        int orderEpoch = -1;

        while (step < total)
        {
            if (o.CancellationToken.IsCancellationRequested)
            {
                SaveCheckpoint(optimizer, step, identity);
                o.CancellationToken.ThrowIfCancellationRequested();
            }
            int epoch = step / stepsPerEpoch;
            if (epoch != orderEpoch) { order = Permutation(examples.Count, o.Seed, epoch); orderEpoch = epoch; }
            int firstBatch = (step % stepsPerEpoch) * o.GradientAccumulationSteps;
            int micros = Math.Min(o.GradientAccumulationSteps, batches - firstBatch);

            optimizer.ZeroGrad();
            var stepMetrics = new Dictionary<string, double>();
            int tokens = 0;
            for (int m = 0; m < micros; m++)
            {
                int start = (firstBatch + m) * o.BatchSize;
                var idx = order!.Skip(start).Take(o.BatchSize).ToArray();
                var batch = idx.Select(i => examples[i]).ToArray();
                torch.manual_seed(MixSeed(o.Seed, step, m));
                using var scope = torch.NewDisposeScope();
                var (loss, metrics, n) = _objective.Compute(_model, batch, idx);
                double value = loss.detach().to(ScalarType.Float64).item<double>();
                if (!double.IsFinite(value))
                {
                    // Nothing has been applied for this step yet: the weights are the last good ones.
                    SaveCheckpoint(optimizer, step, identity);
                    throw new InvalidOperationException(
                        $"Training stopped: the loss became {value} at step {step + 1} (epoch {epoch + 1}). " +
                        (o.CheckpointDirectory is null ? "No checkpoint folder was set." : $"The last good state is saved in '{o.CheckpointDirectory}'.") +
                        " Lower the learning rate or check the data.");
                }
                (loss / Num(micros)).backward();
                // Gradient accumulation sums in fp32 between backwards; after the last one the optimizer's step takes the
                // model's gradients as they are, one parameter at a time (no model's worth of fp32 gradients).
                if (m + 1 < micros || o.FoldGradientsAfterEveryBackward) optimizer.AccumulateGradients();
                foreach (var (k, v) in metrics) stepMetrics[k] = stepMetrics.GetValueOrDefault(k) + v / micros;
                tokens += n;
            }

            double lr = o.LearningRate * CosineSchedule.Multiplier(step, total, warmup);
            double gradNorm = optimizer.Step(lr, o.MaxGradNorm);
            step++;

            stepMetrics["grad_norm"] = gradNorm;
            stepMetrics["learning_rate"] = lr;
            window.Add(stepMetrics, tokens);
            o.Progress?.Report(new TrainingProgress(step, total, epoch, stepMetrics));

            if (step % o.LogInterval == 0 || step == total)
            {
                var record = window.Flush(clock.Elapsed.TotalSeconds);
                record["step"] = step;
                record["epoch"] = (double)step / stepsPerEpoch;
                History.Add(record);
                o.Log?.Invoke(Format(record));
                if (metricsFile is not null) { metricsFile.WriteLine(JsonSerializer.Serialize(record)); metricsFile.Flush(); }
                clock.Restart();
            }
            if (o.CheckpointInterval > 0 && step % o.CheckpointInterval == 0 && step < total)
                SaveCheckpoint(optimizer, step, identity);
        }
        SaveCheckpoint(optimizer, step, identity);
        // The last step's gradients are not needed after training (a model's worth of memory under full fine-tuning).
        optimizer.ReleaseGradients();
        _model.SetTraining(false);
        StepsDone = step;
    }

    private static long MixSeed(int seed, int step, int micro) => ((long)seed * 1_000_003 + step) * 131 + micro;

    internal static int[] Permutation(int n, int seed, int epoch)
    {
        var rng = new Random(StableSeed.Mix(seed, epoch, 0x5eed));
        var p = Enumerable.Range(0, n).ToArray();
        rng.Shuffle(p);
        return p;
    }

    // Everything a checkpoint is made from: the loop's settings, the data (tokenized, in order) and the caller's items.
    private Dictionary<string, string> Identity(IReadOnlyList<TExample> examples, int total)
    {
        var o = _options;
        string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        var identity = new Dictionary<string, string>
        {
            ["examples"] = examples.Count.ToString(CultureInfo.InvariantCulture),
            ["data sha256"] = TrainingDataHash.Of(examples),
            ["epochs"] = o.Epochs.ToString(CultureInfo.InvariantCulture),
            ["total steps"] = total.ToString(CultureInfo.InvariantCulture),
            ["batch size"] = o.BatchSize.ToString(CultureInfo.InvariantCulture),
            ["gradient accumulation"] = o.GradientAccumulationSteps.ToString(CultureInfo.InvariantCulture),
            ["learning rate"] = F(o.LearningRate),
            ["warmup ratio"] = F(o.WarmupRatio),
            ["weight decay"] = F(o.WeightDecay),
            ["max grad norm"] = F(o.MaxGradNorm),
            ["seed"] = o.Seed.ToString(CultureInfo.InvariantCulture),
        };
        foreach (var (k, v) in o.RunIdentity) identity[k] = v;
        return identity;
    }

    internal const string MasterWeightsIdentity = "AdamW with fp32 master weights and state";

    // Checkpoint layout: checkpoint-latest/ {weights.bin, optimizer.bin, masters.bin (bf16/fp16 models), state.json}. A save writes a complete folder
    // under a temporary name, flushes it to disk, and only then renames it into place (rename is atomic), moving the
    // previous one aside first; resume reads checkpoint-latest, or checkpoint-previous when a kill fell between the
    // two renames. Temporary folders are never read, so a kill in the middle of a write leaves the last complete
    // checkpoint in charge.
    internal const string LatestName = "checkpoint-latest";
    internal const string PreviousName = "checkpoint-previous";
    internal const string WritingPrefix = "checkpoint-writing";

    private string LatestDir => Path.Combine(_options.CheckpointDirectory!, LatestName);

    private void SaveCheckpoint(MixedPrecisionAdamW optimizer, int step, Dictionary<string, string> identity)
    {
        if (_options.CheckpointDirectory is null) return;
        var root = _options.CheckpointDirectory;
        Directory.CreateDirectory(root);
        foreach (var stale in Directory.EnumerateDirectories(root, WritingPrefix + "*")) Directory.Delete(stale, true);
        var tmp = Path.Combine(root, $"{WritingPrefix}-{Guid.NewGuid():N}");
        var old = Path.Combine(root, PreviousName);
        Directory.CreateDirectory(tmp);
        _model.SaveTrainableState(Path.Combine(tmp, "weights.bin"));
        optimizer.Save(tmp);
        File.WriteAllText(Path.Combine(tmp, "state.json"), JsonSerializer.Serialize(new CheckpointState(step, identity)));
        foreach (var file in Directory.EnumerateFiles(tmp)) FlushToDisk(file);
        if (Directory.Exists(LatestDir))
        {
            // Only now is checkpoint-previous redundant: checkpoint-latest is complete.
            if (Directory.Exists(old)) Directory.Delete(old, true);
            Directory.Move(LatestDir, old);
        }
        Directory.Move(tmp, LatestDir);
        if (Directory.Exists(old)) Directory.Delete(old, true);
    }

    private static void FlushToDisk(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
        f.Flush(flushToDisk: true);
    }

    private void DiscardCheckpoint()
    {
        var root = _options.CheckpointDirectory;
        if (root is null || !Directory.Exists(root)) return;
        bool any = false;
        foreach (var name in new[] { LatestName, PreviousName })
        {
            var dir = Path.Combine(root, name);
            if (Directory.Exists(dir)) { Directory.Delete(dir, true); any = true; }
        }
        foreach (var stale in Directory.EnumerateDirectories(root, WritingPrefix + "*")) Directory.Delete(stale, true);
        if (any) _options.Log?.Invoke($"Discarded the checkpoint in '{root}': training restarts from step 0.");
    }

    private int TryResume(MixedPrecisionAdamW optimizer, Dictionary<string, string> identity)
    {
        if (_options.CheckpointDirectory is null) return 0;
        var dir = LatestDir;
        if (!Directory.Exists(dir))
        {
            var old = Path.Combine(_options.CheckpointDirectory, PreviousName);
            if (!Directory.Exists(old)) return 0;
            dir = old; // killed between the two renames of a save
        }
        CheckpointState? state;
        try { state = JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(Path.Combine(dir, "state.json"))); }
        catch (JsonException) { state = null; }
        if (state is null) throw new InvalidDataException($"Checkpoint '{dir}' has an unreadable state.json. {RestartAdvice}");
        if (state.Identity is null)
            throw new InvalidOperationException(
                $"The checkpoint in '{dir}' was written by an older version of Microsoft.ML.StepDpo that did not record the base model, " +
                $"options and data it was made from, so it cannot be checked to belong to this run. {RestartAdvice}");
        var differences = CheckpointIdentity.Differences(state.Identity, identity);
        if (differences.Count > 0)
            throw new InvalidOperationException(
                $"The checkpoint in '{dir}' belongs to a different run: {string.Join("; ", differences)}. " +
                $"Resume only with the same base model, data and options. {RestartAdvice}");
        _model.LoadTrainableState(Path.Combine(dir, "weights.bin"));
        optimizer.Load(dir);
        return state.Step;
    }

    private const string RestartAdvice =
        "To discard it and train from step 0, set RestartFromScratch (samples: train --restart); or use another checkpoint folder.";

    // Identity is null in a state.json written before checkpoints recorded what they were made from (it had a Fingerprint).
    private sealed record CheckpointState(int Step, Dictionary<string, string>? Identity);

    private static string Format(Dictionary<string, double> r) =>
        string.Join(" ", r.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key}={kv.Value:G5}")));

    /// <summary>Averages step metrics over a log interval and measures tokens/s.</summary>
    private sealed class MetricWindow
    {
        private readonly Dictionary<string, double> _sum = new();
        private int _count, _tokens;
        public void Add(Dictionary<string, double> m, int tokens)
        {
            foreach (var (k, v) in m) _sum[k] = _sum.GetValueOrDefault(k) + v;
            _count++; _tokens += tokens;
        }
        public Dictionary<string, double> Flush(double seconds)
        {
            var r = _sum.ToDictionary(kv => kv.Key, kv => kv.Value / Math.Max(1, _count));
            r["tokens_per_s"] = seconds > 0 ? _tokens / seconds : 0;
            _sum.Clear(); _count = 0; _tokens = 0;
            return r;
        }
    }
}
