using System.Text.Json;
using System.Text.Json.Nodes;

namespace Microsoft.ML.StepDpo.Modeling.Tokenization;

/// <summary>
/// The few fields of a Hugging Face <c>tokenizer_config.json</c> this project uses (EOS and pad tokens),
/// and the file's JSON so that saving a loaded tokenizer keeps it as it was.
/// </summary>
internal sealed class TokenizerConfig
{
    public string? EosToken { get; init; }

    public string? PadToken { get; init; }

    /// <summary>The file as loaded, or null when there was none.</summary>
    public JsonObject? Json { get; init; }

    public static TokenizerConfig ReadOrDefault(string path)
    {
        if (!File.Exists(path))
            return new TokenizerConfig();
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new InvalidDataException("empty");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or InvalidDataException)
        {
            throw new InvalidDataException($"'{path}' is not a valid tokenizer_config.json: {e.Message}", e);
        }
        return new TokenizerConfig { EosToken = TokenText(json["eos_token"]), PadToken = TokenText(json["pad_token"]), Json = json };
    }

    /// <summary>Writes the loaded file back, or a minimal one Hugging Face's AutoTokenizer accepts.</summary>
    public void Write(string path, string? eosToken)
    {
        var json = Json is not null ? (JsonObject)Json.DeepClone() : new JsonObject
        {
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
            ["add_bos_token"] = false,
            ["clean_up_tokenization_spaces"] = false,
            ["bos_token"] = null,
            ["eos_token"] = eosToken,
            ["pad_token"] = PadToken,
            ["unk_token"] = null,
        };
        File.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>A token is written either as "text" or as {"content": "text", ...}.</summary>
    private static string? TokenText(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue(out string? s) => s,
        JsonObject o => o["content"]?.GetValue<string>(),
        _ => null,
    };
}
