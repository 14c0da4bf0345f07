namespace Microsoft.ML.StepDpo.Data;

/// <summary>
/// One text column read from a JSONL field. A string value is taken as is, a number/bool/array/object as its
/// JSON text, null or a missing optional field as an empty string.
/// </summary>
/// <remarks>
/// A field that no row of the file has (under any of its names) is an error when the file is loaded, naming the field,
/// the file and the fields it does have, so that a misspelled name is never read as empty text; declare a field that a
/// file may lack altogether with <see cref="MayBeAbsentFromFile"/>. Rows that lack a field which other rows have are
/// counted in <see cref="JsonlDataView.RowsLackingField"/>: an optional field reads as empty text in them, a
/// <see cref="Required"/> one makes them malformed (an error, or skipped with <see cref="JsonlReadOptions.SkipMalformedLines"/>).
/// </remarks>
/// <param name="ColumnName">The column name in the <see cref="IDataView"/>.</param>
/// <param name="Required">Whether a line without this field is malformed.</param>
/// <param name="Aliases">Other JSON names accepted for the field (the first one present wins).</param>
public sealed record JsonlField(string ColumnName, bool Required = false, params string[] Aliases)
{
    /// <summary>
    /// Whether the file may lack this field in every row (then every row reads it as empty text). Default false: a
    /// field that no row has is an error at load.
    /// </summary>
    public bool MayBeAbsentFromFile { get; init; }

    internal IEnumerable<string> JsonNames => Aliases.Prepend(ColumnName);
}
