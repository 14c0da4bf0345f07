using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Microsoft.ML.StepDpo.Data;

/// <summary>
/// One streaming pass over a JSONL file when it is loaded: which top-level fields its rows have, and how many rows
/// have each declared field (under any of its names). Values are skipped, not parsed, and one line is held at a time.
/// Lines that are not JSON objects are not counted; the reader reports them with file and line.
/// </summary>
internal sealed class JsonlFieldScan
{
    // The field names remembered for messages and suggestions (a file whose rows all have different keys stays bounded).
    private const int MaxNames = 10_000;

    private JsonlFieldScan(int fieldCount) => Present = new long[fieldCount];

    /// <summary>Rows (lines holding a JSON object).</summary>
    public long Rows { get; private set; }

    /// <summary>Per declared field, the rows that have it.</summary>
    public long[] Present { get; }

    /// <summary>The top-level field names of the file, in the order they first appear.</summary>
    public List<string> Names { get; } = new();

    public static JsonlFieldScan Read(string path, IReadOnlyList<JsonlField> fields)
    {
        var scan = new JsonlFieldScan(fields.Count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var lineNames = new HashSet<string>(StringComparer.Ordinal);
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            if (string.IsNullOrWhiteSpace(line) || !TopLevelNames(line, lineNames)) continue;
            scan.Rows++;
            for (int i = 0; i < fields.Count; i++)
                if (fields[i].JsonNames.Any(lineNames.Contains)) scan.Present[i]++;
            foreach (var name in lineNames)
                if (seen.Count < MaxNames && seen.Add(name)) scan.Names.Add(name);
        }
        return scan;
    }

    // The property names of a line that is one JSON object; false when it is not.
    private static bool TopLevelNames(string line, HashSet<string> names)
    {
        names.Clear();
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetByteCount(line));
        try
        {
            int length = Encoding.UTF8.GetBytes(line, buffer);
            var json = new Utf8JsonReader(buffer.AsSpan(0, length));
            if (!json.Read() || json.TokenType != JsonTokenType.StartObject) return false;
            while (json.Read() && json.TokenType == JsonTokenType.PropertyName)
            {
                names.Add(json.GetString()!);
                json.Skip();
            }
            if (json.TokenType != JsonTokenType.EndObject || json.CurrentDepth != 0) return false;
            return !json.Read(); // nothing after the object
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return false; // invalid JSON, or a name that is not valid text: a malformed line, reported by the reader
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
