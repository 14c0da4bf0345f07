using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Data;

namespace Microsoft.ML.StepDpo;

/// <summary>JSONL dataset readers and writer on <c>mlContext.Data</c>. Readers stream: memory does not grow with the file.</summary>
public static class DataCatalogExtensions
{
    /// <summary>
    /// Reads Math-Step-DPO-10K JSONL: text columns <c>dataset, prompt, initial_reason_steps, chosen, rejected,
    /// full_chosen, full_rejected, answer</c> (<c>prefix</c> is accepted for <c>initial_reason_steps</c>;
    /// <c>prompt</c> and <c>chosen</c> are required).
    /// </summary>
    public static JsonlDataView LoadFromStepDpoJsonl(this DataOperationsCatalog catalog, string path, JsonlReadOptions? options = null)
        => new(path, JsonlFormats.StepDpo, options);

    /// <summary>Reads GSM8K JSONL: <c>question</c>, <c>answer</c>, and the derived <c>final_answer</c> (after "####").</summary>
    public static JsonlDataView LoadFromGsm8kJsonl(this DataOperationsCatalog catalog, string path, JsonlReadOptions? options = null)
        => new(path, JsonlFormats.Gsm8k, options, new (string, Func<string[], string>)[] { ("final_answer", v => JsonlFormats.Gsm8kFinalAnswer(v[1])) });

    /// <summary>Reads MATH JSONL: <c>problem</c>, <c>solution</c>, <c>level</c>, <c>type</c>, and the derived <c>final_answer</c> (last \boxed{} of the solution).</summary>
    public static JsonlDataView LoadFromMathJsonl(this DataOperationsCatalog catalog, string path, JsonlReadOptions? options = null)
        => new(path, JsonlFormats.Math, options, new (string, Func<string[], string>)[] { ("final_answer", v => AnswerExtractor.LastBoxed(v[1]) ?? string.Empty) });

    /// <summary>
    /// Reads JSONL with the named fields as text columns. A field that no row of the file has is an
    /// <see cref="ArgumentException"/> here, naming it and the fields the file has (a misspelled name is never read as
    /// empty text); a row lacking a field that other rows have reads it as an empty string and is counted in
    /// <see cref="JsonlDataView.RowsLackingField"/>.
    /// </summary>
    public static JsonlDataView LoadFromJsonl(this DataOperationsCatalog catalog, string path, params string[] fields)
        => new(path, fields.Select(f => new JsonlField(f)).ToArray(), null);

    /// <summary>
    /// Reads JSONL with the given fields (required fields, aliases, fields the file may lack) as text columns. A field
    /// that no row of the file has is an <see cref="ArgumentException"/> here unless it is declared with
    /// <see cref="JsonlField.MayBeAbsentFromFile"/>; rows lacking a field are counted in <see cref="JsonlDataView.RowsLackingField"/>.
    /// </summary>
    public static JsonlDataView LoadFromJsonl(this DataOperationsCatalog catalog, string path, IReadOnlyList<JsonlField> fields, JsonlReadOptions? options = null)
        => new(path, fields, options);

    /// <summary>
    /// Writes <paramref name="data"/> as UTF-8 JSONL, one object per row: text, Boolean and numeric columns,
    /// scalar or vector (as arrays). <paramref name="columns"/> null writes every visible column. Returns the row count.
    /// </summary>
    public static long SaveAsJsonl(this DataOperationsCatalog catalog, IDataView data, Stream stream, params string[] columns)
        => JsonlWriter.Write(data, stream, columns.Length == 0 ? null : columns);

    /// <summary>
    /// Writes <paramref name="data"/> as a UTF-8 JSONL file, replaced only once complete: <paramref name="data"/> may be
    /// read from the same file, and on an error the old file stays as it was. The folder is created when missing.
    /// Returns the row count.
    /// </summary>
    public static long SaveAsJsonl(this DataOperationsCatalog catalog, IDataView data, string path, params string[] columns)
        => JsonlWriter.Write(data, path, columns.Length == 0 ? null : columns);

    /// <summary>
    /// Writes the rows of a JSONL file read with <see cref="JsonlReadOptions.RawJsonColumnName"/> back as JSONL with
    /// columns added: each row is its original JSON object, every property's JSON kept as it was (numbers, booleans,
    /// null, arrays and objects stay what they were), a property named like an added column replaced, then the
    /// <paramref name="addedColumns"/> (text, Boolean and numeric columns, scalar or vector). Like
    /// <see cref="SaveAsJsonl(DataOperationsCatalog, IDataView, string, string[])"/>, the file is replaced only once
    /// complete and its folder is created when missing. Returns the row count.
    /// </summary>
    /// <param name="catalog">The data catalog.</param>
    /// <param name="data">Rows with a raw JSON column, e.g. a transformed <see cref="JsonlDataView"/>.</param>
    /// <param name="path">The output file.</param>
    /// <param name="rawJsonColumnName">The column holding each row's original JSON object.</param>
    /// <param name="addedColumns">The columns written after the original properties, in this order.</param>
    public static long SaveAsJsonlPassThrough(this DataOperationsCatalog catalog, IDataView data, string path, string rawJsonColumnName, params string[] addedColumns)
        => JsonlWriter.WritePassThrough(data, path, rawJsonColumnName, addedColumns);
}
