using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Gradient checkpointing for one decoder layer as a custom autograd function: forward runs without
/// keeping activations; backward recomputes the layer from its saved input (restoring the forward's RNG
/// state, so dropout masks match) and differentiates it w.r.t. the input and the layer's trainable parameters.
/// </summary>
internal sealed class CheckpointedLayer : autograd.SingleTensorFunction<CheckpointedLayer>
{
    /// <summary>The layer as a function of (hidden, cos, sin, mask).</summary>
    public delegate Tensor LayerFunction(Tensor hidden, Tensor cos, Tensor sin, Tensor? mask);

    public override string Name => nameof(CheckpointedLayer);

    /// <summary>y = layer(x, cos, sin, mask), with <paramref name="owner"/>'s trainable parameters as extra inputs.</summary>
    public static Tensor Run(LayerFunction layer, Tensor x, Tensor cos, Tensor sin, Tensor? mask, nn.Module owner)
    {
        // Argument layout (gradients are returned in the same positions): layer, x, cos, sin, mask, params...
        var args = new List<object?> { layer, x, cos, sin, mask };
        args.AddRange(owner.parameters().Where(p => p.requires_grad));
        return apply(args.ToArray()!);
    }

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var layer = (LayerFunction)vars[0];
        var (x, cos, sin, mask) = ((Tensor)vars[1], (Tensor)vars[2], (Tensor)vars[3], vars[4] as Tensor);
        // Saved variables keep cos/sin/mask alive until backward even after the caller's scope has ended.
        ctx.save_for_backward(new List<Tensor> { x, cos, sin, mask! });
        ctx.save_data("layer", layer);
        ctx.save_data("params", vars.Skip(5).Cast<Tensor>().ToArray());
        ctx.save_data("rng", RngBytes());
        return layer(x, cos, sin, mask);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var layer = (LayerFunction)ctx.get_data("layer");
        var parameters = (Tensor[])ctx.get_data("params");
        var saved = ctx.get_saved_variables();
        var rngNow = RngBytes();
        SetRng((byte[])ctx.get_data("rng"));
        try
        {
            using var scope = torch.NewDisposeScope();
            using var _ = torch.enable_grad();
            var input = saved[0].detach().requires_grad_(true);
            var y = layer(input, saved[1], saved[2], saved[3]);
            var inputs = new List<Tensor> { input };
            inputs.AddRange(parameters);
            var grads = torch.autograd.grad(new List<Tensor> { y }, inputs, new List<Tensor> { gradOutput });
            foreach (var g in grads) g.MoveToOuterDisposeScope();
            var result = new List<Tensor> { null!, grads[0], null!, null!, null! };
            result.AddRange(grads.Skip(1));
            return result;
        }
        finally
        {
            SetRng(rngNow);
        }
    }

    private static byte[] RngBytes()
    {
        using var s = torch.get_rng_state();
        return s.data<byte>().ToArray();
    }

    private static void SetRng(byte[] state)
    {
        using var s = torch.tensor(state, dtype: ScalarType.Byte);
        torch.set_rng_state(s);
    }
}
