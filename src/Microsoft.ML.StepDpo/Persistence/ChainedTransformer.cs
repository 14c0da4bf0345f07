using Microsoft.ML.Data;

namespace Microsoft.ML.StepDpo.Persistence;

/// <summary>
/// Base of the Step-DPO transformers whose work is done by an inner <see cref="TransformerChain{T}"/> of
/// public ML.NET transforms (see <see cref="PersistedMapping"/>). Every <see cref="ITransformer"/> member
/// delegates to that chain, so saving writes the chain and loading gives back an equivalent chain.
/// </summary>
public abstract class ChainedTransformer : ITransformer
{
    private protected ChainedTransformer(ITransformer inner)
    {
        Inner = inner ?? throw new ArgumentNullException(nameof(inner));
    }

    /// <summary>The chain of public transforms that does the work and is what gets saved.</summary>
    private protected ITransformer Inner { get; }

    /// <inheritdoc/>
    public bool IsRowToRowMapper => Inner.IsRowToRowMapper;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Inner.GetOutputSchema(inputSchema);

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Inner.GetRowToRowMapper(inputSchema);

    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => Inner.Transform(input);

    /// <summary>Saves the inner chain; <c>mlContext.Model.Load</c> restores it as a transformer chain.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => ((ICanSaveModel)Inner).Save(ctx);
}
