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
}
