using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Microsoft.ML.StepDpo.Modeling.KeptScalars;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// TorchSharp's AdamW step, computed one parameter at a time: the same arithmetic, operation for operation (so the
/// same bits), on the optimizer's own state (so its saved state is unchanged), with each parameter's temporaries
/// freed before the next parameter.
/// </summary>
/// <remarks>
/// TorchSharp 0.107's <see cref="AdamW.step"/> runs every parameter's update inside one dispose scope, so the two
/// temporaries of each update (√v and √v / √(1 − β₂ᵗ)) live until the last parameter is done: 8 bytes a parameter with
/// fp32 state, 4 GB at Qwen2.5-0.5B. Here one scope per parameter, and the division in place, keep one temporary of the
/// largest parameter's size. Numbers reach libtorch as Scalars held until the operation returns (see
/// <see cref="Modeling.KeptScalars"/>): constants through <c>Num</c>, the values that change every step (learning rate,
/// bias corrections) as Scalars disposed right after, so that a long run does not grow the kept-Scalar cache.
/// </remarks>
internal static class AdamWStep
{
    /// <summary>One AdamW step of every parameter that has a gradient, at each group's current learning rate.</summary>
    public static void Apply(AdamW optimizer)
    {
        var states = optimizer.state_dict().State;   // in the order of the groups' parameters
        int k = 0;
        using var noGrad = torch.no_grad();
        foreach (var group in optimizer.ParamGroups.Cast<AdamW.ParamGroup>())
        {
            CheckSupported(group.Options);
            foreach (var param in group.Parameters)
            {
                var state = (AdamW.State)states[k++];
                using var scope = torch.NewDisposeScope();
                var grad = param.grad;
                if (grad is null) continue;
                Update(param, grad, state, group.Options);
            }
        }
    }

    /// <summary>Each parameter of <paramref name="optimizer"/> with its AdamW state and its group's options.</summary>
    public static Dictionary<Parameter, (AdamW.State State, AdamW.Options Options)> StatesByParameter(AdamW optimizer)
    {
        var states = optimizer.state_dict().State;   // in the order of the groups' parameters
        var byParameter = new Dictionary<Parameter, (AdamW.State, AdamW.Options)>(ReferenceEqualityComparer.Instance);
        int k = 0;
        foreach (var group in optimizer.ParamGroups.Cast<AdamW.ParamGroup>())
        {
            CheckSupported(group.Options);
            foreach (var param in group.Parameters) byParameter.Add(param, ((AdamW.State)states[k++], group.Options));
        }
        return byParameter;
    }

    /// <summary>
    /// One AdamW step of <paramref name="param"/> with gradient <paramref name="grad"/> (what <see cref="Apply"/> does for
    /// each parameter), at the group's current learning rate. Call under no_grad, inside a dispose scope. With
    /// <paramref name="gradAsDenominator"/> the denominator √v̂ + ε is computed in <paramref name="grad"/>'s memory once
    /// the moments no longer need the gradient (it is overwritten) instead of in a new tensor: the same numbers (a square
    /// root is correctly rounded however it is computed), one parameter-sized temporary less.
    /// </summary>
    public static void Update(Tensor param, Tensor grad, AdamW.State state, AdamW.Options o, bool gradAsDenominator = false)
    {
        double beta1 = o.beta1!.Value, beta2 = o.beta2!.Value, eps = o.eps!.Value, lr = o.LearningRate!.Value, weightDecay = o.weight_decay!.Value;
        state.step += 1;
        using (var decay = (1 - lr * weightDecay).ToScalar()) param.mul_(decay);
        double biasCorrection1 = 1 - Math.Pow(beta1, state.step);
        double biasCorrection2 = 1 - Math.Pow(beta2, state.step);
        state.exp_avg.mul_(Num(beta1)).add_(grad, alpha: Num(1 - beta1));
        state.exp_avg_sq.mul_(Num(beta2)).addcmul_(grad, grad, value: Num(1 - beta2));
        var denom = gradAsDenominator ? grad.copy_(state.exp_avg_sq).sqrt_() : state.exp_avg_sq.sqrt();
        using (var root = Math.Sqrt(biasCorrection2).ToScalar()) denom.div_(root);
        denom.add_(Num(eps), Num(1L));   // with a kept alpha (KeptScalars)
        using var stepSize = (-(lr / biasCorrection1)).ToScalar();
        param.addcdiv_(state.exp_avg, denom, value: stepSize);
    }

    private static void CheckSupported(AdamW.Options o)
    {
        if (o.amsgrad == true || o.maximize == true) throw new NotSupportedException("AMSGrad and maximize are not supported.");
    }
}
