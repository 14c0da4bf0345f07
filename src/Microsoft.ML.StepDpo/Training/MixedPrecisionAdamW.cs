using static Microsoft.ML.StepDpo.Modeling.KeptScalars;
using TorchSharp;
using TorchSharp.Modules;
using Microsoft.ML.StepDpo.Modeling;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// AdamW over a model's trainable parameters (no decay on biases and norms), with fp32 master weights for the
/// parameters held in bf16 or fp16: mixed-precision training as DeepSpeed's and Megatron's bf16 optimizers do it.
/// </summary>
/// <remarks>
/// <para>
/// bf16 keeps 8 bits of mantissa: a weight near 0.02 moves only by steps of 1.2e-4, so AdamW's updates at the
/// learning rates of DPO (5e-7 to 1e-5) round away and a bf16 model that updates its own weights does not learn. Here
/// forward and backward still run in the model's dtype on the model's weights, but each low-precision parameter has an
/// fp32 copy (its master) that AdamW updates, with fp32 moments: the gradients are taken in fp32, clipping measures the
/// fp32 gradients, AdamW steps the masters, and each master is rounded back into the model's parameter.
/// </para>
/// <para>
/// Two ways to the same numbers. A step with one backward (no gradient accumulation) keeps the model's own gradients
/// until <see cref="Step"/>, which first measures the clip norm from their fp32 conversions (one parameter at a time)
/// and then, one parameter at a time, converts its gradient to fp32 again, scales it by the clip coefficient, steps its
/// master, rounds the master into the parameter and releases the model's gradient: one parameter's fp32 gradient is
/// alive at a time, in one buffer of the largest master's size that every conversion and AdamW's denominator reuse,
/// not a model's worth. A step with several backwards calls
/// <see cref="AccumulateGradients"/> between them, which adds the model's gradients into fp32 sums held by the masters
/// (so the sum is taken in fp32); its <see cref="Step"/> then clips and steps those sums as TorchSharp's
/// <c>clip_grad_norm_</c> and AdamW would. Both give the same bits (tested): the norm of the fp32 conversion of a
/// gradient is the norm of its fp32 sum when there is one term, and the clip coefficient is computed as libtorch's
/// <c>clip_grad_norm_</c> computes it.
/// </para>
/// <para>
/// fp32 (and fp64) parameters have no master: AdamW updates them in place (TorchSharp's AdamW, stepped by
/// <see cref="AdamWStep"/>: the same arithmetic and saved state), so an fp32 model trains bit for bit as with
/// TorchSharp's AdamW. Memory per low-precision parameter: 4 bytes of master and 8 of moments, besides the model's own
/// weight and gradient, plus the one fp32 buffer (0.54 GB at Qwen2.5-0.5B, its embedding); with gradient accumulation
/// 4 more of fp32 gradient sum from the first backward of a step to its end.
/// </para>
/// </remarks>
internal sealed class MixedPrecisionAdamW : IDisposable
{
    /// <summary>The checkpoint file of the masters (fp32, by position in the trainable list), next to the AdamW state.</summary>
    public const string MastersFile = "masters.bin";
    public const string StateFile = "optimizer.bin";

    private readonly List<Parameter> _optimized;                 // what AdamW updates: a parameter itself, or its master
    private readonly List<(Parameter Model, Parameter Master)> _masters = new();
    private readonly bool[] _hadGradient;                          // per master: a zeroed gradient of plain AdamW would exist
    private readonly int[] _masterOf;                              // per optimized parameter: its index in _masters, or -1
    private bool _summed;                                          // some master holds an fp32 gradient sum (AccumulateGradients)
    private Tensor? _scratch;                                      // fp32, the largest master's size: one gradient at a time
    private readonly AdamW _adamW;                               // its state and saved state; the step is AdamWStep's

    /// <param name="trainable">The model's trainable parameters, in a stable order (checkpoints store masters by position).</param>
    /// <param name="learningRate">The initial learning rate (each <see cref="Step"/> sets the current one).</param>
    /// <param name="weightDecay">Decoupled weight decay of the matrices; vectors (biases, norms) get none.</param>
    /// <param name="needsMaster">Which parameters get an fp32 master; default: those in bf16 or fp16.</param>
    public MixedPrecisionAdamW(IReadOnlyList<Parameter> trainable, double learningRate, double weightDecay, Func<Parameter, bool>? needsMaster = null)
    {
        if (trainable.Count == 0) throw new ArgumentException("No trainable parameters.", nameof(trainable));
        needsMaster ??= IsLowPrecision;
        _optimized = new List<Parameter>(trainable.Count);
        _masterOf = new int[trainable.Count];
        foreach (var p in trainable)
        {
            _masterOf[_optimized.Count] = needsMaster(p) ? _masters.Count : -1;
            if (!needsMaster(p)) { _optimized.Add(p); continue; }
            Parameter master;
            using (torch.no_grad())
            using (var weight = p.detach())
                master = new Parameter(weight.to(ScalarType.Float32, copy: true), requires_grad: true);
            _masters.Add((p, master));
            _optimized.Add(master);
        }
        _hadGradient = new bool[_masters.Count];
        var decay = new List<Parameter>();
        var noDecay = new List<Parameter>();
        for (int i = 0; i < trainable.Count; i++) (trainable[i].dim() >= 2 ? decay : noDecay).Add(_optimized[i]);
        var groups = new List<AdamW.ParamGroup>();
        if (decay.Count > 0) groups.Add(new AdamW.ParamGroup(decay, new AdamW.Options { LearningRate = learningRate, weight_decay = weightDecay }));
        if (noDecay.Count > 0) groups.Add(new AdamW.ParamGroup(noDecay, new AdamW.Options { LearningRate = learningRate, weight_decay = 0 }));
        _adamW = torch.optim.AdamW(groups, learningRate, weight_decay: weightDecay);
    }

    /// <summary>bf16 and fp16: too few mantissa bits to take small updates.</summary>
    public static bool IsLowPrecision(Tensor p) => p.dtype is ScalarType.BFloat16 or ScalarType.Float16;

    /// <summary>True when some parameter trains through an fp32 master.</summary>
    public bool HasMasterWeights => _masters.Count > 0;

    /// <summary>Clears the gradients before a step's first backward (as AdamW's zero_grad: zeroed, not released).</summary>
    public void ZeroGrad() => _adamW.zero_grad();

    /// <summary>
    /// Call between the backwards of one step (after each backward that another backward of the same step follows):
    /// adds the low-precision parameters' gradients into their masters' fp32 gradients and releases them, so gradient
    /// accumulation over micro-batches sums in fp32. After a step's last backward it is not needed (<see cref="Step"/>
    /// takes the gradients as they are); calling it there too gives the same result with a model's worth of fp32
    /// gradients held until the step ends (the plain path, kept as the reference the one-at-a-time path is tested
    /// against). Nothing to do without masters.
    /// </summary>
    public void AccumulateGradients()
    {
        if (_masters.Count == 0) return;
        using var noGrad = torch.no_grad();
        for (int i = 0; i < _masters.Count; i++)
        {
            // One scope per parameter: a handle on a released gradient would keep its memory until the scope ends.
            using var scope = torch.NewDisposeScope();
            var (p, master) = _masters[i];
            var g = p.grad;
            if (g is null) continue;
            var sum = master.grad;
            if (sum is null) master.grad = g.to(ScalarType.Float32);
            else sum.add_(g, Num(1L));   // with a kept alpha (KeptScalars)
            p.grad = null;
            _hadGradient[i] = true;
            _summed = true;
        }
    }

    /// <summary>
    /// Clips the gradients to <paramref name="maxGradNorm"/> (global L2 norm over every trained tensor), sets the
    /// learning rate, steps AdamW and, for masters, rounds the new values into the model's parameters.
    /// </summary>
    /// <returns>The gradient norm before clipping.</returns>
    public double Step(double learningRate, double maxGradNorm)
    {
        foreach (var g in _adamW.ParamGroups) g.LearningRate = learningRate;
        if (_masters.Count > 0 && !_summed) return StepOneParameterAtATime(maxGradNorm);
        AccumulateGradients();
        _summed = false;
        if (_masters.Count > 0)
        {
            // A parameter that had a gradient once keeps a zeroed one under plain AdamW (zero_grad zeroes, it does not
            // release), so AdamW still moves it on its moments when a step gives it no gradient. Same here.
            for (int i = 0; i < _masters.Count; i++)
            {
                using var scope = torch.NewDisposeScope();
                if (_hadGradient[i] && _masters[i].Master.grad is null) _masters[i].Master.grad = torch.zeros_like(_masters[i].Master);
            }
        }
        double gradNorm = nn.utils.clip_grad_norm_(_optimized, maxGradNorm);
        AdamWStep.Apply(_adamW);
        if (_masters.Count > 0)
        {
            using var noGrad = torch.no_grad();
            foreach (var (p, master) in _masters)
            {
                p.copy_(master);       // round to nearest even into bf16/fp16
                master.grad = null;    // 4 bytes a parameter until the next step's backward
            }
        }
        return gradNorm;
    }

    /// <summary>
    /// The step when no fp32 gradient sums were made (one backward): the same numbers as clip_grad_norm_ and AdamW over
    /// the fp32 gradients, with one parameter's fp32 gradient alive at a time.
    /// </summary>
    private double StepOneParameterAtATime(double maxGradNorm)
    {
        using var noGrad = torch.no_grad();
        using var stepScope = torch.NewDisposeScope();
        // libtorch's clip_grad_norm_ (torch/nn/utils/clip_grad.h), norm type 2: the norm of each gradient that exists, in
        // the order of the parameters; the total is the norm of those norms (the one norm itself when there is one);
        // coefficient = max_norm / (total + 1e-6) — which ATen computes as empty_like(d).fill_(max_norm).div_(d) —
        // clamped to at most 1; every gradient is multiplied by it.
        var norms = new List<Tensor>();
        for (int i = 0; i < _optimized.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var g = Fp32Gradient(i);
            if (g is not null) norms.Add(g.norm(2.0f).MoveToOuterDisposeScope());
        }
        double gradNorm = 0;
        Tensor? coefficient = null;
        if (norms.Count > 0)
        {
            var total = norms.Count == 1 ? norms[0] : torch.stack(norms).norm(2.0f);
            var divisor = total.add(Num(1e-6), Num(1L));   // with a kept alpha (KeptScalars)
            coefficient = torch.empty_like(divisor).fill_(Num(maxGradNorm)).div_(divisor).clamp(null, Num(1.0));
            gradNorm = total.to(ScalarType.Float64).item<double>();
        }

        var states = AdamWStep.StatesByParameter(_adamW);
        for (int i = 0; i < _optimized.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var param = _optimized[i];
            var g = Fp32Gradient(i);
            if (g is not null)
            {
                g.mul_(coefficient!);
                var (state, options) = states[param];
                // A master's gradient is the scratch buffer, free to take the denominator; a plain parameter's is its own.
                AdamWStep.Update(param, g, state, options, gradAsDenominator: _masterOf[i] >= 0);
            }
            if (_masterOf[i] >= 0)
            {
                var model = _masters[_masterOf[i]].Model;
                model.grad = null;
                model.copy_(param);   // round to nearest even into bf16/fp16
            }
        }
        return gradNorm;
    }

    /// <summary>
    /// The fp32 gradient of optimized parameter <paramref name="i"/>, in the current dispose scope: a plain parameter's
    /// own gradient; for a master, its model parameter's gradient converted to fp32 (exactly, as
    /// <see cref="AccumulateGradients"/> converts it), zeros when the parameter had a gradient in an earlier step but has
    /// none now (as AdamW's zero_grad leaves it), or null. A master's is a view of one scratch buffer, valid until the
    /// next call: the buffer is allocated once, at the first step, so the step allocates nothing of a parameter's size
    /// (with <see cref="Modeling.NativeHeap"/> retaining freed memory, such temporaries of 0.5 GB at Qwen2.5-0.5B's
    /// embedding found no hole to fit after the next backward and grew the heap by their size each time).
    /// </summary>
    private Tensor? Fp32Gradient(int i)
    {
        int m = _masterOf[i];
        if (m < 0) return _optimized[i].grad;
        var (p, master) = _masters[m];
        var g = p.grad;
        if (g is null && !_hadGradient[m]) return null;
        _scratch ??= torch.empty(_masters.Max(x => x.Master.numel()), ScalarType.Float32, master.device).DetachFromDisposeScope();
        var buffer = _scratch.narrow(0, 0, master.numel()).view(master.shape);
        if (g is null) return buffer.zero_();
        _hadGradient[m] = true;
        return buffer.copy_(g);
    }

    /// <summary>Releases every gradient (the model's and the masters'): after training they are a model's worth of memory.</summary>
    public void ReleaseGradients()
    {
        foreach (var p in _optimized) p.grad = null;
        foreach (var (p, _) in _masters) p.grad = null;
        _summed = false;
        _scratch?.Dispose();
        _scratch = null;
    }

    /// <summary>Writes AdamW's state (<see cref="StateFile"/>) and, with masters, the masters (<see cref="MastersFile"/>) into <paramref name="directory"/>.</summary>
    public void Save(string directory)
    {
        using (var w = new BinaryWriter(File.Create(Path.Combine(directory, StateFile))))
            _adamW.save_state_dict(w);
        if (_masters.Count > 0)
            SafeTensors.Write(Path.Combine(directory, MastersFile), _masters.Select((m, i) => (MasterName(i), (Tensor)m.Master)));
    }

    /// <summary>Restores what <see cref="Save"/> wrote; the model's parameters must already hold the checkpoint's weights.</summary>
    public void Load(string directory)
    {
        if (_masters.Count > 0)
        {
            var path = Path.Combine(directory, MastersFile);
            if (!File.Exists(path))
                throw new InvalidDataException($"Checkpoint '{directory}' has no {MastersFile} (the fp32 master weights of the bf16/fp16 parameters).");
            using var reader = new SafeTensors.Reader(path);
            if (reader.Entries.Count != _masters.Count)
                throw new InvalidDataException($"'{path}' holds {reader.Entries.Count} master weights; this model has {_masters.Count}.");
            for (int i = 0; i < _masters.Count; i++)
            {
                var master = _masters[i].Master;
                if (!reader.Entries.TryGetValue(MasterName(i), out var e) || e.DType != ScalarType.Float32 || !e.Shape.SequenceEqual(master.shape))
                    throw new InvalidDataException($"'{path}': master weight {i} is missing or is not fp32 of shape [{string.Join(", ", master.shape)}].");
                reader.ReadInto(MasterName(i), master);
            }
        }
        using var r = new BinaryReader(File.OpenRead(Path.Combine(directory, StateFile)));
        _adamW.load_state_dict(r);
    }

    private static string MasterName(int index) => "master." + index.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public void Dispose()
    {
        _adamW.Dispose();
        foreach (var (_, master) in _masters) master.Dispose();
        _scratch?.Dispose();
    }
}
