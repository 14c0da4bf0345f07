using System.Text.Json;
using System.Text.Json.Nodes;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>Reads the small JSON files of a model folder, naming the file when one is empty, truncated or not an object.</summary>
internal static class JsonFiles
{
    public static JsonObject ReadObject(string path)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON (empty or truncated?): {e.Message}", e);
        }
        return node as JsonObject ?? throw new InvalidDataException($"'{path}' does not hold a JSON object.");
    }
}
