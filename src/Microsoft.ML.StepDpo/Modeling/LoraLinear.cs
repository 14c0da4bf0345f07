using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// A linear projection <c>y = x·Wᵀ + b</c> that can carry a LoRA adapter:
/// <c>y += (alpha / r) · B(A(dropout(x)))</c>. Parameter names follow Hugging Face and PEFT
/// (<c>weight</c>, <c>bias</c>, <c>lora_A.weight</c>, <c>lora_B.weight</c>), so base checkpoints and PEFT
/// adapters load by name.
/// </summary>
internal sealed class LoraLinear : nn.Module
{
    private Parameter weight;
    private Parameter? bias;
    private Linear? lora_A;
    private Linear? lora_B;

    public LoraLinear(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype, Device device) : base(nameof(LoraLinear))
    {
        weight = new Parameter(torch.empty(outFeatures, inFeatures, dtype: dtype, device: device));
        bias = hasBias ? new Parameter(torch.zeros(outFeatures, dtype: dtype, device: device)) : null;
        RegisterComponents();
    }

    public Parameter Weight => weight;
    public Parameter? Bias => bias;
    public long InFeatures => weight.shape[1];
    public long OutFeatures => weight.shape[0];

    public bool HasAdapter => lora_A is not null;
    public int Rank { get; private set; }
    public double Alpha { get; private set; }
    public double Dropout { get; private set; }
    public double Scaling => Alpha / Rank;
    /// <summary>When false the adapter is skipped and the output is exactly the base projection's.</summary>
    public bool AdapterEnabled { get; set; } = true;
    public Parameter? LoraA => lora_A?.weight;
    public Parameter? LoraB => lora_B?.weight;

    /// <summary>Adds a LoRA adapter: A ~ kaiming-uniform(a=√5), B = 0 (PEFT's defaults), so the output is unchanged.</summary>
    public void AddAdapter(int rank, double alpha, double dropout)
    {
        if (HasAdapter) throw new InvalidOperationException("This projection already has a LoRA adapter.");
        if (rank <= 0) throw new ArgumentOutOfRangeException(nameof(rank), "LoRA rank must be positive.");
        if (dropout is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(dropout), "LoRA dropout must be in [0, 1).");
        Rank = rank; Alpha = alpha; Dropout = dropout;
        var a = nn.Linear(InFeatures, rank, hasBias: false, device: weight.device, dtype: weight.dtype);
        var b = nn.Linear(rank, OutFeatures, hasBias: false, device: weight.device, dtype: weight.dtype);
        using (torch.no_grad())
        {
            nn.init.kaiming_uniform_(a.weight!, a: Math.Sqrt(5));
            b.weight!.zero_();
        }
        lora_A = a; lora_B = b;
        register_module("lora_A", a);
        register_module("lora_B", b);
    }

    /// <summary>Folds the adapter into the base weight (W += scaling·B·A) and removes it.</summary>
    public void MergeAdapter()
    {
        if (lora_A is null || lora_B is null) return;
        using (torch.no_grad())
        {
            var delta = lora_B.weight!.to(ScalarType.Float32).matmul(lora_A.weight!.to(ScalarType.Float32)) * Num(Scaling);
            weight.add_(delta.to(weight.dtype), Num(1L));
        }
        RemoveAdapter();
    }

    public void RemoveAdapter()
    {
        if (lora_A is null) return;
        lora_A.Dispose(); lora_B!.Dispose();
        lora_A = null; lora_B = null;
        // TorchSharp keeps registered children in a dictionary; drop them so state_dict no longer lists them.
        _internal_submodules.Remove("lora_A");
        _internal_submodules.Remove("lora_B");
    }

    public Tensor forward(Tensor x)
    {
        var y = InferenceLinear.Linear(x, weight, bias);   // F.linear, or the bf16 decoding kernel without autograd
        if (lora_A is null || lora_B is null || !AdapterEnabled) return y;
        var h = CounterDropout.Apply(x, Dropout, training);   // torch's dropout, with a mask libtorch would fill on one thread
        var u = lora_A.forward(h);
        // y + scaling·(u·Bᵀ) as one addmm: the product accumulates onto y with the scale applied in the GEMM, instead of
        // writing u·Bᵀ, scaling it and adding it (two more passes over a [tokens, out] tensor forward, one backward).
        var shape = y.shape;
        return torch.addmm(y.reshape(-1, OutFeatures), u.reshape(-1, Rank), lora_B.weight!.t(), beta: 1, alpha: (float)Scaling).view(shape);
    }

    /// <summary>Hugging Face's initialization: N(0, std) weights, zero bias.</summary>
    public void InitNormal(double std)
    {
        using (torch.no_grad())
        {
            weight.normal_(0, std);
            bias?.zero_();
        }
    }
}
