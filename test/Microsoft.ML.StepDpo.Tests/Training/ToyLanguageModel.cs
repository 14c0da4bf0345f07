using Microsoft.ML.StepDpo.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Tests.Training;

/// <summary>A one-block attention LM (token + position embeddings, one SDPA head, dropout, vocab head) behind
/// <see cref="ICausalLanguageModel"/>: small enough for loop tests, rich enough that masks and positions matter.</summary>
internal sealed class ToyLanguageModel : nn.Module<Tensor, Tensor, Tensor?, Tensor>, ICausalLanguageModel
{
    private readonly Embedding tok, pos;
    private readonly Linear qkv, head;
    private readonly Dropout drop;

    public ToyLanguageModel(int vocab = 48, int dim = 16, double dropout = 0.1) : base("toy")
    {
        tok = nn.Embedding(vocab, dim); pos = nn.Embedding(64, dim);
        qkv = nn.Linear(dim, 3 * dim); head = nn.Linear(dim, vocab);
        drop = nn.Dropout(dropout);
        RegisterComponents();
    }

    public static ToyLanguageModel Create(int seed, ScalarType dtype = ScalarType.Float32, double dropout = 0.1)
    {
        torch.manual_seed(seed);
        var saved = torch.get_default_dtype();
        torch.set_default_dtype(dtype);
        try { return new ToyLanguageModel(dropout: dropout); }
        finally { torch.set_default_dtype(saved); }
    }

    public override Tensor forward(Tensor ids, Tensor positions, Tensor? mask)
    {
        var x = tok.forward(ids) + pos.forward(positions);
        var parts = qkv.forward(x).unsqueeze(1).chunk(3, -1);
        var att = mask is null
            ? nn.functional.scaled_dot_product_attention(parts[0], parts[1], parts[2], is_casual: true)
            : nn.functional.scaled_dot_product_attention(parts[0], parts[1], parts[2], mask);
        return drop.forward(x + att.squeeze(1));
    }

    public Tensor ForwardHidden(Tensor inputIds, Tensor? positionIds, Tensor? attentionMask) =>
        forward(inputIds, positionIds ?? torch.arange(Num(inputIds.shape[1])).expand(inputIds.shape), attentionMask);
    public Tensor ProjectToLogits(Tensor hidden) => head.forward(hidden);
    public IEnumerable<Parameter> TrainableParameters() => parameters();
    public void SetTraining(bool training) => train(training);
    public T WithReference<T>(Func<T> action) => action();
    public void SaveTrainableState(string path) => save(path);
    public void LoadTrainableState(string path) => load(path);
    public Device Device => torch.CPU;

    public Dictionary<string, Tensor> Snapshot() => named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
}
