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
    public static long Write(IDataView data, Stream stream, IEnumerable<string>? columns = null) =>
        WrappedErrors.Run(() => WriteRows(data, stream, columns));

    private static long WriteRows(IDataView data, Stream stream, IEnumerable<string>? columns)
    {
        var schema = data.Schema;
        var cols = (columns is null
            ? schema.Where(c => !c.IsHidden)
            : columns.Select(n => SchemaChecks.Column(schema, n, nameof(columns))))
            .ToArray();
        using var cursor = data.GetRowCursor(cols);
        var writers = cols.Select(c => MakeWriter(cursor, c)).ToArray();
        using var json = new Utf8JsonWriter(stream, s_options);
        long rows = 0;
        while (cursor.MoveNext())
        {
            json.WriteStartObject();
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
        var names = new HashSet<string>(addedColumns, StringComparer.Ordinal);
        return AtomicFile.Write(path, stream =>
        {
            using var cursor = data.GetRowCursor(added.Append(raw));
            var rawGetter = cursor.GetGetter<ReadOnlyMemory<char>>(raw);
            var writers = added.Select(c => MakeWriter(cursor, c)).ToArray();
            using var json = new Utf8JsonWriter(stream, s_options);
            ReadOnlyMemory<char> line = default;
            long rows = 0;
            while (cursor.MoveNext())
            {
                rawGetter(ref line);
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new InvalidDataException($"Column '{rawJsonColumn}' of row {rows + 1} is not a JSON object.");
                json.WriteStartObject();
                foreach (var property in doc.RootElement.EnumerateObject())
                    if (!names.Contains(property.Name)) property.WriteTo(json);
                for (int i = 0; i < added.Length; i++)
                {
                    json.WritePropertyName(added[i].Name);
                    writers[i](json);
                }
                json.WriteEndObject();
                json.Flush();
                stream.WriteByte((byte)'\n');
                json.Reset();
                rows++;
            }
            return rows;
        });
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
