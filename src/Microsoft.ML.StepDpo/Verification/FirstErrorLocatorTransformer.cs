using Microsoft.ML.StepDpo.Persistence;

namespace Microsoft.ML.StepDpo.Verification;

/// <summary>
/// The fitted <see cref="FirstErrorLocatorEstimator"/>. With arithmetic verifiers only it saves with
/// <c>mlContext.Model.Save</c> and loads with <c>mlContext.Model.Load</c>
/// as a transformer chain that gives identical output; with verifiers that need a live model or client, saving throws
/// (see <see cref="CanSave"/>; <c>mlContext.Model.SaveAtomically</c> then leaves no partial file at the path).
/// </summary>
public sealed class FirstErrorLocatorTransformer : ChainedTransformer, ICanSaveModel
{
    private readonly string? _notPersistable;

    internal FirstErrorLocatorTransformer(ITransformer inner, string? notPersistable) : base(inner)
    {
        _notPersistable = notPersistable;
    }

    /// <summary>Whether this transformer can be saved (only arithmetic verifiers).</summary>
    public bool CanSave => _notPersistable is null;

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        if (_notPersistable is not null)
        {
            throw new InvalidOperationException(
                $"This first-error locator cannot be saved: its verifiers '{_notPersistable}' need a live model or chat client, which a model file " +
                "cannot hold. Save a locator of arithmetic verifiers only, and add the other verifiers in code after loading.");
        }
        ((ICanSaveModel)Inner).Save(ctx);
    }
}
