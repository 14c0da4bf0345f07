using Microsoft.ML.Data;

namespace Microsoft.ML.StepDpo.Data;

/// <summary>
/// The input-column checks of this library's estimators and readers, with ML.NET's own wording: a missing column is
/// <c>ArgumentOutOfRangeException("inputSchema", "Could not find input column 'X'")</c>, a column of the wrong type
/// "Schema mismatch for input column 'X': expected String, got Single". An estimator writes its checks once, against
/// <see cref="For(SchemaShape)"/> in <c>GetOutputSchema</c> and <see cref="For(DataViewSchema)"/> in <c>Fit</c>, so both
/// give the same message.
/// </summary>
/// <remarks>
/// ML.NET's own estimators run <c>GetOutputSchema(SchemaShape.Create(input.Schema))</c> in <c>Fit</c>; in ML.NET 5
/// <c>SchemaShape.Create</c> (like the <see cref="SchemaShape.Column"/> constructor) is internal, hence the two views.
/// </remarks>
internal sealed class SchemaChecks
{
    private const string Param = "inputSchema";

    private readonly Func<string, Found?> _find;

    private SchemaChecks(Func<string, Found?> find) => _find = find;

    /// <summary>What a check needs to know of a column: vector kind, item type, and how ML.NET would print the type.</summary>
    private readonly record struct Found(SchemaShape.Column.VectorKind Kind, DataViewType ItemType, string Type);

    /// <summary>Checks against the schema an estimator's <c>GetOutputSchema</c> is given.</summary>
    public static SchemaChecks For(SchemaShape schema)
    {
        ArgumentNullException.ThrowIfNull(schema, Param);
        return new(name =>
        {
            Found? found = null;
            foreach (var col in schema)
                if (col.Name == name) found = new Found(col.Kind, col.ItemType, Describe(col.Kind, col.ItemType));
            return found;
        });
    }

    /// <summary>Checks against the schema of the data an estimator's <c>Fit</c> is given.</summary>
    public static SchemaChecks For(DataViewSchema schema)
    {
        ArgumentNullException.ThrowIfNull(schema, Param);
        return new(name => schema.GetColumnOrNull(name) is { } col
            ? col.Type is VectorDataViewType v
                ? new Found(v.Size == 0 ? SchemaShape.Column.VectorKind.VariableVector : SchemaShape.Column.VectorKind.Vector, v.ItemType, $"{v}")
                : new Found(SchemaShape.Column.VectorKind.Scalar, col.Type, $"{col.Type}")
            : null);
    }

    /// <summary>Throws unless there is a text (String) column <paramref name="name"/>.</summary>
    public void RequireText(string name)
    {
        var col = Require(name);
        if (col.Kind != SchemaShape.Column.VectorKind.Scalar || col.ItemType is not TextDataViewType)
            throw Mismatch(name, "String", col.Type);
    }

    /// <summary>Throws unless there is a variable-length vector of text column <paramref name="name"/>.</summary>
    public void RequireTextVector(string name)
    {
        var col = Require(name);
        if (col.Kind != SchemaShape.Column.VectorKind.VariableVector || col.ItemType is not TextDataViewType)
            throw Mismatch(name, "Vector<String>", col.Type);
    }

    /// <summary>The text column <paramref name="name"/> of <paramref name="schema"/>, for reading; throws if it is missing or not text.</summary>
    public static DataViewSchema.Column TextColumn(DataViewSchema schema, string name)
    {
        For(schema).RequireText(name);
        return schema[name];
    }

    /// <summary>The column <paramref name="name"/> of <paramref name="schema"/>, of any type; throws if it is missing.</summary>
    public static DataViewSchema.Column Column(DataViewSchema schema, string name, string paramName = Param) =>
        schema.GetColumnOrNull(name) ?? throw Missing(name, paramName);

    private Found Require(string name) => _find(name) ?? throw Missing(name, Param);

    private static ArgumentOutOfRangeException Missing(string name, string paramName) =>
        new(paramName, $"Could not find input column '{name}'");

    private static ArgumentOutOfRangeException Mismatch(string name, string expected, string actual) =>
        new(Param, $"Schema mismatch for input column '{name}': expected {expected}, got {actual}");

    private static string Describe(SchemaShape.Column.VectorKind kind, DataViewType itemType) => kind switch
    {
        SchemaShape.Column.VectorKind.Scalar => $"{itemType}",
        SchemaShape.Column.VectorKind.VariableVector => $"Vector<{itemType}>",
        _ => $"Vector<{itemType}, fixed size>",
    };
}
