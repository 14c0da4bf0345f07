using Microsoft.ML.Data;

namespace Microsoft.ML.StepDpo.Data;

/// <summary>Output schemas of estimators whose transformers are built only when they are fitted (the trainers).</summary>
internal static class SchemaShapeExtensions
{
    private sealed class NoInput { }

    /// <summary>
    /// <paramref name="input"/> plus the columns of <typeparamref name="TOutput"/> (the output class of the custom mapping
    /// the fitted transformer runs), each named as <paramref name="names"/> maps its column name; an added column replaces
    /// an input column of the same name, as the transform's output does. ML.NET's <c>CustomMapping</c> estimator derives
    /// the columns, so their types are exactly those the mapping produces (<see cref="SchemaShape.Column"/> has no public
    /// constructor).
    /// </summary>
    public static SchemaShape WithColumnsOf<TOutput>(this SchemaShape input, TransformsCatalog transforms, IReadOnlyDictionary<string, string> names)
        where TOutput : class, new()
    {
        var output = SchemaDefinition.Create(typeof(TOutput));
        foreach (var col in output) col.ColumnName = names[col.ColumnName];
        return transforms.CustomMapping<NoInput, TOutput>((_, _) => { }, contractName: null, outputSchemaDefinition: output)
            .GetOutputSchema(input);
    }
}
