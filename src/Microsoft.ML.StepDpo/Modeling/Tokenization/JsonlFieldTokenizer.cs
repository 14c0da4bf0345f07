using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.ML.StepDpo.Data;

namespace Microsoft.ML.StepDpo.Modeling.Tokenization;

/// <summary>
/// Streams a JSON Lines file, one object at a time, and writes each object back with an added <c>ids</c>
/// array: the tokens of one string field (special tokens recognised). Other fields are copied as they are.
/// </summary>
internal static class JsonlFieldTokenizer
{
    /// <summary>Returns the number of records and of tokens written.</summary>
    public static (int Records, long Tokens) Run(Func<string, int[]> encode, TextReader input, Stream output, string field)
    {
        ArgumentNullException.ThrowIfNull(encode);
        ArgumentException.ThrowIfNullOrEmpty(field);
        using var writer = new Utf8JsonWriter(output, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        int records = 0, lineNumber = 0;
        long tokens = 0;
        string? line;
        while ((line = input.ReadLine()) is not null)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            using var doc = Parse(line, lineNumber);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"Line {lineNumber}: expected a JSON object.");
            if (!doc.RootElement.TryGetProperty(field, out var value) || value.ValueKind != JsonValueKind.String)
                throw new InvalidDataException($"Line {lineNumber}: no string field '{field}'.");
            if (!JsonText.TryGetString(value, out string? text))
                throw new InvalidDataException($"Line {lineNumber}: field '{field}' is not valid text (it holds a lone UTF-16 surrogate such as \\ud800).");
            int[] ids = encode(text!);

            writer.WriteStartObject();
            foreach (var property in doc.RootElement.EnumerateObject())
                if (property.Name != "ids")
                    property.WriteTo(writer);
            writer.WriteStartArray("ids");
            foreach (int id in ids)
                writer.WriteNumberValue(id);
            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.Flush();
            writer.Reset();
            output.WriteByte((byte)'\n');
            records++;
            tokens += ids.Length;
        }
        return (records, tokens);
    }

    private static JsonDocument Parse(string line, int lineNumber)
    {
        try
        {
            return JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Line {lineNumber}: not valid JSON ({e.Message}).", e);
        }
    }
}
