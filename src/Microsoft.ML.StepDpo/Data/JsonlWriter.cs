using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.ML.Data;

namespace Microsoft.ML.StepDpo.Data;

/// <summary>Writes an <see cref="IDataView"/> as UTF-8 JSONL (one object per row), streaming.</summary>
internal static class JsonlWriter
{
    private static readonly JsonWriterOptions s_options = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // keep LaTeX and non-ASCII readable; still valid JSON
        Indented = false,
    };

    /// <summary>
    /// Writes the given columns (all visible columns when null) of <paramref name="data"/>. Text, Boolean,
    /// Single, Double, Int32, Int64 and UInt32 columns, scalar or vector (vectors become arrays), are supported.
    /// </summary>
    public static long Write(IDataView data, Stream stream, IEnumerable<string>? columns = null)
    {
        var schema = data.Schema;
        var cols = (columns is null
            ? schema.Where(c => !c.IsHidden)
            : columns.Select(n => SchemaChecks.Column(schema, n, nameof(columns))))
            .ToArray();
        return WrappedErrors.Run(() => WriteRows(data, stream, cols, passThrough: null));
    }

    /// <summary>
    /// Writes to a file, created or replaced only once every row is written (<see cref="AtomicFile"/>): the data may
    /// be read from the very file it replaces, and a failure leaves the old file as it was.
    /// </summary>
    public static long Write(IDataView data, string path, IEnumerable<string>? columns = null)
        => AtomicFile.Write(path, stream => Write(data, stream, columns));

    /// <summary>
    /// Writes each row as the JSON object held in <paramref name="rawJsonColumn"/> (its properties' JSON copied as
    /// they are, numbers, booleans, null, arrays and objects included), less any property named like an added
    /// column, followed by the <paramref name="addedColumns"/>. Replaces <paramref name="path"/> only once complete.
    /// </summary>
    public static long WritePassThrough(IDataView data, string path, string rawJsonColumn, IReadOnlyList<string> addedColumns)
    {
        var schema = data.Schema;
        var raw = SchemaChecks.TextColumn(schema, rawJsonColumn);
        var added = addedColumns.Select(n => SchemaChecks.Column(schema, n, nameof(addedColumns))).ToArray();
        return AtomicFile.Write(path, stream => WrappedErrors.Run(() => WriteRows(data, stream, added, raw)));
    }

    /// <summary>
    /// One object per row: the properties of the JSON object in <paramref name="passThrough"/> (when given) that no
    /// written column replaces, then <paramref name="cols"/>.
    /// </summary>
    private static long WriteRows(IDataView data, Stream stream, DataViewSchema.Column[] cols, DataViewSchema.Column? passThrough)
    {
        using var cursor = data.GetRowCursor(passThrough is { } p ? cols.Append(p) : cols);
        var writers = cols.Select(c => MakeWriter(cursor, c)).ToArray();
        var rawGetter = passThrough is { } column ? cursor.GetGetter<ReadOnlyMemory<char>>(column) : null;
        var replaced = new HashSet<string>(cols.Select(c => c.Name), StringComparer.Ordinal);
        using var json = new Utf8JsonWriter(stream, s_options);
        ReadOnlyMemory<char> line = default;
        long rows = 0;
        while (cursor.MoveNext())
        {
            json.WriteStartObject();
            if (rawGetter is not null)
            {
                rawGetter(ref line);
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new InvalidDataException($"Column '{passThrough!.Value.Name}' of row {rows + 1} is not a JSON object.");
                foreach (var property in doc.RootElement.EnumerateObject())
                    if (!replaced.Contains(property.Name)) property.WriteTo(json);
            }
            for (int i = 0; i < cols.Length; i++)
            {
                json.WritePropertyName(cols[i].Name);
                writers[i](json);
            }
            json.WriteEndObject();
            json.Flush();
            stream.WriteByte((byte)'\n');
            json.Reset();
            rows++;
        }
        return rows;
    }

    private static Action<Utf8JsonWriter> MakeWriter(DataViewRowCursor cursor, DataViewSchema.Column column)
    {
        var type = column.Type;
        if (type is VectorDataViewType vt)
        {
            var item = vt.ItemType;
            if (item is TextDataViewType) return VectorWriter<ReadOnlyMemory<char>>(cursor, column, (w, v) => w.WriteStringValue(v.Span));
            if (item is BooleanDataViewType) return VectorWriter<bool>(cursor, column, (w, v) => w.WriteBooleanValue(v));
            if (item == NumberDataViewType.Single) return VectorWriter<float>(cursor, column, (w, v) => WriteNumber(w, v));
            if (item == NumberDataViewType.Double) return VectorWriter<double>(cursor, column, WriteNumber);
            if (item == NumberDataViewType.Int32) return VectorWriter<int>(cursor, column, (w, v) => w.WriteNumberValue(v));
            if (item == NumberDataViewType.Int64) return VectorWriter<long>(cursor, column, (w, v) => w.WriteNumberValue(v));
            if (item == NumberDataViewType.UInt32) return VectorWriter<uint>(cursor, column, (w, v) => w.WriteNumberValue(v));
        }
        else
        {
            if (type is TextDataViewType) return ScalarWriter<ReadOnlyMemory<char>>(cursor, column, (w, v) => w.WriteStringValue(v.Span));
            if (type is BooleanDataViewType) return ScalarWriter<bool>(cursor, column, (w, v) => w.WriteBooleanValue(v));
            if (type == NumberDataViewType.Single) return ScalarWriter<float>(cursor, column, (w, v) => WriteNumber(w, v));
            if (type == NumberDataViewType.Double) return ScalarWriter<double>(cursor, column, WriteNumber);
            if (type == NumberDataViewType.Int32) return ScalarWriter<int>(cursor, column, (w, v) => w.WriteNumberValue(v));
            if (type == NumberDataViewType.Int64) return ScalarWriter<long>(cursor, column, (w, v) => w.WriteNumberValue(v));
            if (type == NumberDataViewType.UInt32) return ScalarWriter<uint>(cursor, column, (w, v) => w.WriteNumberValue(v));
        }
        throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' has type {type}, which cannot be written as JSON.");
    }

    // NaN and infinities are not JSON numbers: written as null.
    private static void WriteNumber(Utf8JsonWriter w, double v)
    {
        if (double.IsFinite(v)) w.WriteNumberValue(v); else w.WriteNullValue();
    }

    private static Action<Utf8JsonWriter> ScalarWriter<T>(DataViewRowCursor cursor, DataViewSchema.Column column, Action<Utf8JsonWriter, T> write)
    {
        var getter = cursor.GetGetter<T>(column);
        T value = default!;
        return w =>
        {
            getter(ref value);
            write(w, value);
        };
    }

    private static Action<Utf8JsonWriter> VectorWriter<T>(DataViewRowCursor cursor, DataViewSchema.Column column, Action<Utf8JsonWriter, T> write)
    {
        var getter = cursor.GetGetter<VBuffer<T>>(column);
        VBuffer<T> value = default;
        return w =>
        {
            getter(ref value);
            w.WriteStartArray();
            foreach (var item in value.DenseValues())
                write(w, item);
            w.WriteEndArray();
        };
    }
}
