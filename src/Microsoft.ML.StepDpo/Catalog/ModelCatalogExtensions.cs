using Microsoft.ML.StepDpo.Data;

namespace Microsoft.ML.StepDpo;

/// <summary>Saving models on <c>mlContext.Model</c> without ever leaving a partial file.</summary>
public static class ModelCatalogExtensions
{
    /// <summary>
    /// Saves <paramref name="model"/> and <paramref name="inputSchema"/> as <c>mlContext.Model.Save(model, inputSchema, filePath)</c>
    /// does, but the file at <paramref name="filePath"/> is replaced only once the whole model is written: if saving fails
    /// (a transformer that cannot be saved, such as a first-error locator with a judge verifier, or a disk error), a model
    /// already at that path is left as it was, a new path stays free, and no temporary file remains. The folder is created
    /// when missing. (<c>mlContext.Model.Save</c> creates, or empties, the file before any transformer writes into it, so a
    /// failure there leaves a partial zip that later fails to load.)
    /// </summary>
    /// <param name="catalog">The model operations catalog, <c>mlContext.Model</c>.</param>
    /// <param name="model">The model to save (null saves an empty chain, as with <c>Save</c>).</param>
    /// <param name="inputSchema">The schema of the model's input; may be null.</param>
    /// <param name="filePath">The model file to create or replace.</param>
    public static void SaveAtomically(this ModelOperationsCatalog catalog, ITransformer? model, DataViewSchema? inputSchema, string filePath)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        ArgumentException.ThrowIfNullOrWhiteSpace(filePath);
        AtomicFile.Write(filePath, stream =>
        {
            catalog.Save(model, inputSchema, stream);
            return 0;
        });
    }
}
