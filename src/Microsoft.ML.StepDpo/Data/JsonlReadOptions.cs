namespace Microsoft.ML.StepDpo.Data;

/// <summary>Options for reading JSONL files.</summary>
public sealed class JsonlReadOptions
{
    /// <summary>
    /// Skip malformed lines (invalid JSON, not an object, a required field missing) and count them in
    /// <see cref="JsonlDataView.SkippedLineCount"/> instead of failing. Default false: the first malformed line
    /// throws an <see cref="InvalidDataException"/> naming the file and line.
    /// </summary>
    public bool SkipMalformedLines { get; set; }

    /// <summary>
    /// When set, one more text column of this name holds each row's line as it is in the file (its JSON object,
    /// byte-for-byte): <see cref="DataCatalogExtensions.SaveAsJsonlPassThrough"/> writes it back with every field's
    /// JSON type kept. Default null: no such column.
    /// </summary>
    public string? RawJsonColumnName { get; set; }
}
