using System.Text.Json;
using Microsoft.ML.Data;

namespace Microsoft.ML.StepDpo.Data;

/// <summary>
/// A JSONL file as an <see cref="IDataView"/> of text columns, streamed: each cursor reads the file line by
/// line, so memory does not grow with the file. Blank lines are ignored.
/// </summary>
/// <remarks>
/// Loading reads the file once, line by line, to check the declared fields: a field that no row has (a misspelled
/// name) is an <see cref="ArgumentException"/> naming it, the file and the fields the file has, unless the field is
/// declared with <see cref="JsonlField.MayBeAbsentFromFile"/>; rows that lack a field which other rows have are counted
/// in <see cref="RowsLackingField"/> (and traced as a warning).
/// </remarks>
public sealed class JsonlDataView : IDataView
{
    private readonly string _path;
    private readonly JsonlField[] _fields;
    private readonly (string Name, Func<string[], string> Compute)[] _derived;
    private readonly bool _skip;
    private readonly string? _rawColumn;
    private long _skipped = -1;

    internal JsonlDataView(string path, IReadOnlyList<JsonlField> fields, JsonlReadOptions? options,
        IReadOnlyList<(string Name, Func<string[], string> Compute)>? derived = null)
    {
        if (string.IsNullOrEmpty(path)) throw new ArgumentNullException(nameof(path));
        if (!File.Exists(path)) throw new FileNotFoundException($"JSONL file not found: {path}", path);
        if (fields is null || fields.Count == 0) throw new ArgumentException("At least one field is needed.", nameof(fields));
        _path = path;
        _fields = fields.ToArray();
        _derived = derived?.ToArray() ?? Array.Empty<(string, Func<string[], string>)>();
        _skip = options?.SkipMalformedLines ?? false;
        _rawColumn = options?.RawJsonColumnName;
        RowsLackingField = CheckFields(path, _fields);
        var builder = new DataViewSchema.Builder();
        foreach (var f in _fields)
            builder.AddColumn(f.ColumnName, TextDataViewType.Instance);
        foreach (var d in _derived)
            builder.AddColumn(d.Name, TextDataViewType.Instance);
        if (_rawColumn is not null)
            builder.AddColumn(_rawColumn, TextDataViewType.Instance);
        Schema = builder.ToSchema();
    }

    /// <inheritdoc/>
    public bool CanShuffle => false;

    /// <inheritdoc/>
    public DataViewSchema Schema { get; }

    /// <summary>
    /// Malformed lines skipped by the last cursor that read the whole file (with
    /// <see cref="JsonlReadOptions.SkipMalformedLines"/>); -1 before any complete pass.
    /// </summary>
    public long SkippedLineCount => Interlocked.Read(ref _skipped);

    /// <summary>
    /// Per column, the rows of the file (as read when it was loaded) that lack its field under every name. An optional
    /// field reads as empty text in those rows; for a <see cref="JsonlField.Required"/> field they are malformed lines.
    /// </summary>
    public IReadOnlyDictionary<string, long> RowsLackingField { get; }

    /// <inheritdoc/>
    public long? GetRowCount() => null;

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        => new Cursor(this, columnsNeeded);

    /// <inheritdoc/>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => new[] { GetRowCursor(columnsNeeded, rand) };

    // The load-time field check (see the remarks above); returns the rows lacking each field.
    private static Dictionary<string, long> CheckFields(string path, JsonlField[] fields)
    {
        var scan = JsonlFieldScan.Read(path, fields);
        var lacking = new Dictionary<string, long>(StringComparer.Ordinal);
        for (int i = 0; i < fields.Length; i++)
            lacking[fields[i].ColumnName] = scan.Rows - scan.Present[i];
        if (scan.Rows == 0) return lacking; // nothing to learn the fields from; the reader reports malformed lines

        var absent = fields.Where((f, i) => scan.Present[i] == 0 && !f.MayBeAbsentFromFile).ToList();
        if (absent.Count > 0)
        {
            string Describe(JsonlField f)
            {
                string names = string.Join(" or ", f.JsonNames.Select(n => $"'{n}'"));
                string? close = f.JsonNames.Select(n => NameSuggestion.Closest(n, scan.Names)).FirstOrDefault(c => c is not null);
                return close is null ? names : $"{names} (did you mean '{close}'?)";
            }
            const int listed = 40;
            string have = string.Join(", ", scan.Names.Take(listed)) + (scan.Names.Count > listed ? $", … ({scan.Names.Count - listed} more)" : "");
            throw new ArgumentException(
                $"{path}: no row has the field{(absent.Count > 1 ? "s" : "")} {string.Join(", ", absent.Select(Describe))}; the file's fields are: {have}. " +
                (absent.Any(f => f.Required) ? "Check the name or the file." : "Check the name, or declare a field that the file may lack with JsonlField.MayBeAbsentFromFile."));
        }
        for (int i = 0; i < fields.Length; i++)
        {
            long missing = lacking[fields[i].ColumnName];
            if (missing > 0 && missing < scan.Rows)
            {
                System.Diagnostics.Trace.TraceWarning(
                    $"{path}: {missing} of {scan.Rows} rows lack the field '{fields[i].ColumnName}'; " +
                    (fields[i].Required ? "they are malformed lines." : "they read it as empty text."));
            }
        }
        return lacking;
    }

    /// <summary>Parses one line into the field values; returns an error message or null.</summary>
    internal string? TryParse(string line, string[] values)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            return "invalid JSON: " + e.Message;
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                return $"expected a JSON object, found {doc.RootElement.ValueKind}";
            for (int i = 0; i < _fields.Length; i++)
            {
                var f = _fields[i];
                string? value = null;
                foreach (var name in f.JsonNames)
                {
                    if (doc.RootElement.TryGetProperty(name, out var el))
                    {
                        if (el.ValueKind == JsonValueKind.String && !JsonText.TryGetString(el, out value))
                            return $"field '{name}' is not valid text (it holds a lone UTF-16 surrogate such as \\ud800)";
                        value ??= el.ValueKind == JsonValueKind.Null ? string.Empty : el.GetRawText();
                        break;
                    }
                }
                if (value is null)
                {
                    if (f.Required)
                        return $"missing required field '{string.Join("' or '", f.JsonNames)}'";
                    value = string.Empty;
                }
                values[i] = value!;
            }
        }
        for (int i = 0; i < _derived.Length; i++)
            values[_fields.Length + i] = _derived[i].Compute(values);
        if (_rawColumn is not null)
            values[_fields.Length + _derived.Length] = line;
        return null;
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly JsonlDataView _parent;
        private readonly StreamReader _reader;
        private readonly string[] _values;
        private readonly bool[] _active;
        private long _position = -1;
        private long _lineNumber;
        private long _skipped;
        private bool _done;

        public Cursor(JsonlDataView parent, IEnumerable<DataViewSchema.Column> columnsNeeded)
        {
            _parent = parent;
            _reader = new StreamReader(parent._path, System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
            _values = new string[parent.Schema.Count];
            _active = new bool[parent.Schema.Count];
            foreach (var c in columnsNeeded)
                _active[c.Index] = true;
        }

        public override DataViewSchema Schema => _parent.Schema;
        public override long Position => _position;
        public override long Batch => 0;

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override ValueGetter<DataViewRowId> GetIdGetter() =>
            (ref DataViewRowId value) => value = new DataViewRowId((ulong)_position, 0);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (typeof(TValue) != typeof(ReadOnlyMemory<char>))
                throw new InvalidOperationException($"Invalid TValue in GetGetter: '{typeof(TValue)}', expected ReadOnlyMemory<char> for column '{column.Name}'");
            if (!_active[column.Index])
                throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor.");
            int index = column.Index;
            ValueGetter<ReadOnlyMemory<char>> getter = (ref ReadOnlyMemory<char> value) => value = _values[index].AsMemory();
            return (ValueGetter<TValue>)(Delegate)getter;
        }

        public override bool MoveNext()
        {
            if (_done) return false;
            string? line;
            while ((line = _reader.ReadLine()) is not null)
            {
                _lineNumber++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                string? error = _parent.TryParse(line, _values);
                if (error is null)
                {
                    _position++;
                    return true;
                }
                if (!_parent._skip)
                    throw new InvalidDataException($"{_parent._path}:{_lineNumber}: {error.TrimEnd('.')}; fix or remove the line.");
                _skipped++;
            }
            _done = true;
            Interlocked.Exchange(ref _parent._skipped, _skipped);
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _reader.Dispose();
            base.Dispose(disposing);
        }
    }
}
