using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Modeling;

// The whole Qwen2 / Llama decoder in one file, top to bottom: RMSNorm, rotary embedding, grouped-query
// attention, SwiGLU MLP, decoder layer, model, LM head. Field names are the Hugging Face parameter names.

/// <summary>RMSNorm computed in fp32, scaled in the input dtype (as Hugging Face does).</summary>
internal sealed class RmsNorm : nn.Module
{
    private Parameter weight;
    private readonly double eps;

    public RmsNorm(long size, double eps, ScalarType dtype, Device device) : base(nameof(RmsNorm))
    {
        weight = new Parameter(torch.ones(size, dtype: dtype, device: device));
        this.eps = eps;
        RegisterComponents();
    }

    internal Parameter Weight => weight;
    internal double Eps => eps;

    public Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = x.to(ScalarType.Float32);
        h = h * torch.rsqrt(h.pow(Num(2)).mean(new long[] { -1 }, keepdim: true).Plus(Num(eps)));
        return (weight * h.to(x.dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>Token embedding holding exactly one Parameter (also the tied LM head's weight).</summary>
internal sealed class TokenEmbedding : nn.Module
{
    private Parameter weight;

    public TokenEmbedding(long vocab, long hidden, ScalarType dtype, Device device) : base(nameof(TokenEmbedding))
    {
        weight = new Parameter(torch.empty(vocab, hidden, dtype: dtype, device: device));
        RegisterComponents();
    }

    public Parameter Weight => weight;

    public Tensor forward(Tensor ids)
    {
        var shape = ids.shape.Append(weight.shape[1]).ToArray();
        // Advanced indexing (weight[ids]) rather than index_select: the same rows, and it also runs on the meta device,
        // where libtorch has no index_select kernel (the device-placement tests run the model there).
        return weight.index(new[] { ids.reshape(-1) }).reshape(shape);
    }
}

/// <summary>Rotary position embedding, Hugging Face's rotate_half convention (pairs i and i + d/2).</summary>
internal static class Rotary
{
    /// <summary>cos and sin for positions [B,T], shaped [B,1,T,d] in <paramref name="dtype"/>.</summary>
    public static (Tensor Cos, Tensor Sin) Tables(Tensor positions, int headDim, double theta, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        // fp32 like Hugging Face; fp64 only when the whole model is fp64 (used by exactness tests).
        var ft = dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var exponents = torch.arange(Num(0), Num(headDim), Num(2), dtype: ScalarType.Int64, device: positions.device).to(ft) / Num(headDim);
        var invFreq = Num(1.0) / torch.pow(torch.tensor(theta, dtype: ft, device: positions.device), exponents);          // [d/2]
        var freqs = positions.to(ft).unsqueeze(-1) * invFreq;                        // [B,T,d/2]
        var emb = torch.cat(new[] { freqs, freqs }, -1).unsqueeze(1);                 // [B,1,T,d]
        return (emb.cos().to(dtype).MoveToOuterDisposeScope(), emb.sin().to(dtype).MoveToOuterDisposeScope());
    }

    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long d = x.shape[^1], half = d / 2;
        var rotated = torch.cat(new[] { -x.narrow(-1, half, d - half), x.narrow(-1, 0, half) }, -1);
        return (x * cos).Plus(rotated * sin);
    }
}

/// <summary>Grouped-query attention: q/k/v biases (configurable), none on o_proj; K/V repeated per group.</summary>
internal sealed class Qwen2Attention : nn.Module
{
    private LoraLinear q_proj, k_proj, v_proj, o_proj;
    private readonly int heads, kvHeads, headDim;

    public Qwen2Attention(Qwen2Config c, ScalarType dtype, Device device) : base(nameof(Qwen2Attention))
    {
        heads = c.NumAttentionHeads; kvHeads = c.NumKeyValueHeads; headDim = c.HeadDim;
        q_proj = new LoraLinear(c.HiddenSize, heads * headDim, c.AttentionBias, dtype, device);
        k_proj = new LoraLinear(c.HiddenSize, kvHeads * headDim, c.AttentionBias, dtype, device);
        v_proj = new LoraLinear(c.HiddenSize, kvHeads * headDim, c.AttentionBias, dtype, device);
        o_proj = new LoraLinear(heads * headDim, c.HiddenSize, false, dtype, device);
        RegisterComponents();
    }

    internal LoraLinear QProj => q_proj;
    internal LoraLinear KProj => k_proj;
    internal LoraLinear VProj => v_proj;
    internal LoraLinear OProj => o_proj;

    // x [B,T,hidden]; cos/sin [B,1,T,d]; mask boolean [B,1,T,S] (true = may attend) or null for causal;
    // with a cache, this step's K/V are written at slot `offset` of layer `layer` and attention runs over the cache.
    public Tensor forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, IKvCache? cache, int layer, long offset)
    {
        using var scope = torch.NewDisposeScope();
        long B = x.shape[0], T = x.shape[1];
        var q = q_proj.forward(x).view(B, T, heads, headDim).transpose(1, 2);
        var k = k_proj.forward(x).view(B, T, kvHeads, headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(B, T, kvHeads, headDim).transpose(1, 2);
        q = Rotary.Apply(q, cos, sin);
        k = Rotary.Apply(k, cos, sin);
        if (cache is not null)
            (k, v) = cache.Append(layer, k, v, offset);
        Tensor y;
        if (T == 1 && cache?.Attend(layer, q) is { } attended)
        {
            // The cache computes a decoding step's attention itself (SlotAttention: each row over its own valid slots).
            y = attended.reshape(B, T, heads * headDim);
        }
        else if (T == 1 && heads != kvHeads && q.device_type != DeviceType.META)
        {
            // One query per row (a decoding step): the query heads of a group attend as the rows of one kv head, so
            // the cached keys and values are read in place instead of being repeated per group (a copy of the whole
            // cache every step). The same dot products; a mask [B,1,1,S] broadcasts over groups and heads.
            y = F.scaled_dot_product_attention(q.reshape(B, kvHeads, heads / kvHeads, headDim), k, v, attn_mask: mask)
                .reshape(B, T, heads * headDim);
        }
        else if (cache is null && SequenceAttention.AppliesTo(q, k, mask))
        {
            // A whole sequence on the CPU in bf16: the kernel reads only the keys each query block may see.
            y = SequenceAttention.Attend(q, k, v, mask);
        }
        else
        {
            k = RepeatKv(k); v = RepeatKv(v);
            // SDPA's is_casual mask is top-left aligned: only valid when queries and keys start together.
            bool causal = T > 1 && k.shape[2] == T;
            y = q.device_type == DeviceType.META ? ShapeOnlyAttention(q, k, v, mask, causal)
                : mask is null
                ? F.scaled_dot_product_attention(q, k, v, is_casual: causal)
                : F.scaled_dot_product_attention(q, k, v, attn_mask: mask);
            y = y.transpose(1, 2).reshape(B, T, heads * headDim);
        }
        return o_proj.forward(y).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// softmax(q·kᵀ/√d + mask)·v spelled out, for the meta device only: libtorch's SDPA has no meta kernel (its math path
    /// uses where). Shapes and devices flow exactly as through SDPA; values are never computed on meta.
    /// </summary>
    internal static Tensor ShapeOnlyAttention(Tensor q, Tensor k, Tensor v, Tensor? mask, bool causal)
    {
        using var scope = torch.NewDisposeScope();
        var scores = q.matmul(k.transpose(-2, -1)) * Num(1.0 / Math.Sqrt(q.shape[^1]));
        var allowed = mask ?? (causal ? Qwen2ForCausalLM.CausalMask(q.shape[2], 0, q.device) : null);
        if (allowed is not null) scores = scores.Plus((allowed.to(scores.dtype) - Num(1.0)) * Num(1e9));
        return scores.softmax(-1).matmul(v).MoveToOuterDisposeScope();
    }

    private Tensor RepeatKv(Tensor t)
    {
        int rep = heads / kvHeads;
        if (rep == 1) return t;
        long B = t.shape[0], S = t.shape[2];
        return t.unsqueeze(2).expand(B, kvHeads, rep, S, headDim).reshape(B, heads, S, headDim);
    }
}

/// <summary>SwiGLU: down(silu(gate(x)) · up(x)).</summary>
internal sealed class Qwen2Mlp : nn.Module
{
    private LoraLinear gate_proj, up_proj, down_proj;

    public Qwen2Mlp(Qwen2Config c, ScalarType dtype, Device device) : base(nameof(Qwen2Mlp))
    {
        gate_proj = new LoraLinear(c.HiddenSize, c.IntermediateSize, false, dtype, device);
        up_proj = new LoraLinear(c.HiddenSize, c.IntermediateSize, false, dtype, device);
        down_proj = new LoraLinear(c.IntermediateSize, c.HiddenSize, false, dtype, device);
        RegisterComponents();
    }

    internal LoraLinear GateProj => gate_proj;
    internal LoraLinear UpProj => up_proj;
    internal LoraLinear DownProj => down_proj;

    public Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return down_proj.forward(F.silu(gate_proj.forward(x)) * up_proj.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>Pre-norm decoder layer: x + attn(norm(x)), then + mlp(norm(·)).</summary>
internal sealed class Qwen2DecoderLayer : nn.Module
{
    private RmsNorm input_layernorm, post_attention_layernorm;
    private Qwen2Attention self_attn;
    private Qwen2Mlp mlp;

    public Qwen2DecoderLayer(Qwen2Config c, ScalarType dtype, Device device) : base(nameof(Qwen2DecoderLayer))
    {
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
        self_attn = new Qwen2Attention(c, dtype, device);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
        mlp = new Qwen2Mlp(c, dtype, device);
        RegisterComponents();
    }

    internal RmsNorm InputNorm => input_layernorm;
    internal Qwen2Attention Attention => self_attn;
    internal RmsNorm PostAttentionNorm => post_attention_layernorm;
    internal Qwen2Mlp Mlp => mlp;

    public Tensor forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, IKvCache? cache, int layer, long offset)
    {
        using var scope = torch.NewDisposeScope();
        var h = x.Plus(self_attn.forward(input_layernorm.forward(x), cos, sin, mask, cache, layer, offset));
        return h.Plus(mlp.forward(post_attention_layernorm.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>The decoder stack (Hugging Face's <c>model.*</c>).</summary>
internal sealed class Qwen2Model : nn.Module
{
    private TokenEmbedding embed_tokens;
    private ModuleList<Qwen2DecoderLayer> layers;
    private RmsNorm norm;

    public Qwen2Model(Qwen2Config c, ScalarType dtype, Device device) : base(nameof(Qwen2Model))
    {
        embed_tokens = new TokenEmbedding(c.VocabSize, c.HiddenSize, dtype, device);
        layers = new ModuleList<Qwen2DecoderLayer>(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new Qwen2DecoderLayer(c, dtype, device)).ToArray());
        norm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
        RegisterComponents();
    }

    public TokenEmbedding Embedding => embed_tokens;
    public IList<Qwen2DecoderLayer> Layers => layers;
    public RmsNorm Norm => norm;
}

/// <summary>
/// Qwen2ForCausalLM / LlamaForCausalLM. <see cref="Forward"/> maps input ids [B,T] to logits [B,T,V];
/// position ids and a boolean attention mask [B,1,T,T] (true = may attend, replacing the causal mask)
/// are optional, which is what prefix-shared preference training needs.
/// </summary>
internal sealed class Qwen2ForCausalLM : nn.Module
{
    private Qwen2Model model;
    private LoraLinear? lm_head;   // null when tied: the LM head is model.embed_tokens.weight (one Parameter)

    public Qwen2ForCausalLM(Qwen2Config config, ScalarType? dtype = null, Device? device = null) : base(nameof(Qwen2ForCausalLM))
    {
        config.Validate();
        config.CheckFitsInMemory(dtype ?? config.DType, $"The {config.ModelType} config");
        Config = config;
        DType = dtype ?? config.DType;
        Device = device ?? torch.CPU;
        model = new Qwen2Model(config, DType, Device);
        lm_head = config.TieWordEmbeddings ? null : new LoraLinear(config.HiddenSize, config.VocabSize, false, DType, Device);
        RegisterComponents();
    }

    public Qwen2Config Config { get; }
    public ScalarType DType { get; }
    public Device Device { get; }
    public Qwen2Model Model => model;
    /// <summary>The untied LM head; null when it is the embedding's weight.</summary>
    internal LoraLinear? LmHead => lm_head;
    /// <summary>Recompute each layer's activations in backward instead of storing them (training only).</summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>A randomly initialized model, Hugging Face style: N(0, 0.02) weights, zero biases, unit norms.</summary>
    public static Qwen2ForCausalLM CreateRandom(Qwen2Config config, ScalarType? dtype = null, Device? device = null, long? seed = null, double std = 0.02)
    {
        var m = new Qwen2ForCausalLM(config, dtype, device);
        using var _ = torch.no_grad();
        var gen = seed is long s ? new Generator((ulong)s, m.Device) : null;
        m.model.Embedding.Weight.normal_(0, std, gen);
        foreach (var lin in m.modules().OfType<LoraLinear>())
        {
            lin.Weight.normal_(0, std, gen);
            lin.Bias?.zero_();
        }
        gen?.Dispose();
        return m;
    }

    /// <summary>Logits [B,T,V] for input ids [B,T].</summary>
    public Tensor Forward(Tensor inputIds, Tensor? positionIds = null, Tensor? attentionMask = null)
    {
        using var scope = torch.NewDisposeScope();
        return Logits(Hidden(inputIds, positionIds, attentionMask)).MoveToOuterDisposeScope();
    }

    /// <summary>The final normed hidden states [B,T,hidden]; with a cache, K/V are written at <paramref name="cacheOffset"/>.</summary>
    internal Tensor Hidden(Tensor inputIds, Tensor? positionIds, Tensor? attentionMask, IKvCache? cache = null, long cacheOffset = 0)
    {
        using var scope = torch.NewDisposeScope();
        long B = inputIds.shape[0], T = inputIds.shape[1];
        positionIds ??= torch.arange(Num(cacheOffset), Num(cacheOffset + T), dtype: ScalarType.Int64, device: inputIds.device).expand(B, T);
        if (attentionMask is null && cache is not null && cacheOffset > 0 && T > 1)
            attentionMask = CausalMask(T, cacheOffset, inputIds.device).expand(B, 1, T, cacheOffset + T);
        var (cos, sin) = Rotary.Tables(positionIds, Config.HeadDim, Config.RopeTheta, DType);
        var h = model.Embedding.forward(inputIds);
        bool checkpoint = GradientCheckpointing && training && cache is null && torch.is_grad_enabled();
        for (int i = 0; i < model.Layers.Count; i++)
        {
            var layer = model.Layers[i];
            h = checkpoint
                ? CheckpointedLayer.Run((x, c, s, m) => layer.forward(x, c, s, m, null, 0, 0), h, cos, sin, attentionMask, layer)
                : layer.forward(h, cos, sin, attentionMask, cache, i, cacheOffset);
        }
        return model.Norm.forward(h).MoveToOuterDisposeScope();
    }

    internal Tensor Logits(Tensor hidden) =>
        lm_head is null ? InferenceLinear.Linear(hidden, model.Embedding.Weight, null) : lm_head.forward(hidden);

    /// <summary>
    /// log p(targets[b,t] | inputs[b,≤t]) as fp32 [B,T] (see <see cref="GatherLogProbs"/>).
    /// </summary>
    internal Tensor TokenLogProbs(Tensor inputIds, Tensor targets, Tensor? positionIds = null, Tensor? attentionMask = null)
    {
        using var scope = torch.NewDisposeScope();
        var logits = Logits(Hidden(inputIds, positionIds, attentionMask));
        return GatherLogProbs(logits, targets).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// log_softmax(logits)[..., target] in fp32, for logits [..., V] and targets [...]. Two exact formulations,
    /// chosen by cost: under autograd, log_softmax then gather, whose backward is one fused pass over the saved
    /// output (about half the time of logsumexp's backward, which recomputes the exponentials — measured in
    /// docs/benchmarks.md); without autograd, the target logit minus logsumexp, which never materializes a
    /// [..., V] result. Tests hold the two to each other and to a double-precision computation.
    /// </summary>
    internal static Tensor GatherLogProbs(Tensor logits, Tensor targets) =>
        torch.is_grad_enabled() && logits.requires_grad ? GatherViaLogSoftmax(logits, targets) : GatherViaLogSumExp(logits, targets);

    internal static Tensor GatherViaLogSoftmax(Tensor logits, Tensor targets)
    {
        using var scope = torch.NewDisposeScope();
        return AtLeastFloat32(logits).log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1).MoveToOuterDisposeScope();
    }

    internal static Tensor GatherViaLogSumExp(Tensor logits, Tensor targets)
    {
        using var scope = torch.NewDisposeScope();
        var l = AtLeastFloat32(logits);
        var picked = l.gather(-1, targets.unsqueeze(-1)).squeeze(-1);
        return (picked - l.logsumexp(-1, keepdim: false)).MoveToOuterDisposeScope();
    }

    private static Tensor AtLeastFloat32(Tensor t) =>
        t.dtype == ScalarType.Float32 || t.dtype == ScalarType.Float64 ? t : t.to(ScalarType.Float32);

    /// <summary>Boolean [1,1,T,offset+T]: query i (absolute offset+i) sees keys 0..offset+i (bottom-right aligned).</summary>
    internal static Tensor CausalMask(long T, long offset, Device device)
    {
        using var scope = torch.NewDisposeScope();
        var q = torch.arange(Num(offset), Num(offset + T), device: device).unsqueeze(1);
        var k = torch.arange(Num(0), Num(offset + T), device: device).unsqueeze(0);
        return k.le(q).unsqueeze(0).unsqueeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>The LoRA-capable projections by Hugging Face module name (e.g. "model.layers.0.self_attn.q_proj").</summary>
    internal IEnumerable<(string Name, LoraLinear Linear)> Projections() =>
        named_modules().Where(m => m.module is LoraLinear).Select(m => (m.name, (LoraLinear)m.module));
}
