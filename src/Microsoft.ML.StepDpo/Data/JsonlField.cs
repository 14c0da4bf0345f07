namespace Microsoft.ML.StepDpo.Data;

/// <summary>
/// One text column read from a JSONL field. A string value is taken as is, a number/bool/array/object as its
/// JSON text, null or a missing optional field as an empty string.
/// </summary>
/// <param name="ColumnName">The column name in the <see cref="IDataView"/>.</param>
/// <param name="Required">Whether a line without this field is malformed.</param>
/// <param name="Aliases">Other JSON names accepted for the field (the first one present wins).</param>
public sealed record JsonlField(string ColumnName, bool Required = false, params string[] Aliases)
{
    internal IEnumerable<string> JsonNames => Aliases.Prepend(ColumnName);
}
