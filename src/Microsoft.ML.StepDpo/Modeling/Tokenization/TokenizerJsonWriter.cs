using System.Text.Encodings.Web;
using System.Text.Json;

namespace Microsoft.ML.StepDpo.Modeling.Tokenization;

/// <summary>Writes a <see cref="TokenizerDefinition"/> as a Hugging Face <c>tokenizer.json</c>.</summary>
internal static class TokenizerJsonWriter
{
    public static void Write(TokenizerDefinition def, string path)
    {
        using var stream = File.Create(path);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions
        {
            Indented = true,
            // Keep byte-level tokens like "Ġ" readable, as Hugging Face writes them.
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        });
        w.WriteStartObject();
        w.WriteString("version", "1.0");
        w.WriteNull("truncation");
        w.WriteNull("padding");
        w.WriteStartArray("added_tokens");
        foreach (var t in def.AddedTokens.OrderBy(t => t.Id))
        {
            w.WriteStartObject();
            w.WriteNumber("id", t.Id);
            w.WriteString("content", t.Content);
            w.WriteBoolean("single_word", false);
            w.WriteBoolean("lstrip", false);
            w.WriteBoolean("rstrip", false);
            w.WriteBoolean("normalized", false);
            w.WriteBoolean("special", t.Special);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WritePropertyName("normalizer");
        w.WriteRawValue(def.NormalizerJson);
        w.WritePropertyName("pre_tokenizer");
        w.WriteRawValue(def.PreTokenizerJson);
        w.WritePropertyName("post_processor");
        w.WriteRawValue(def.PostProcessorJson);
        w.WritePropertyName("decoder");
        w.WriteRawValue(def.DecoderJson);

        w.WriteStartObject("model");
        w.WriteString("type", "BPE");
        w.WriteNull("dropout");
        if (def.UnknownToken is null) w.WriteNull("unk_token"); else w.WriteString("unk_token", def.UnknownToken);
        w.WriteString("continuing_subword_prefix", "");
        w.WriteString("end_of_word_suffix", "");
        w.WriteBoolean("fuse_unk", false);
        w.WriteBoolean("byte_fallback", false);
        w.WriteBoolean("ignore_merges", false);
        w.WriteStartObject("vocab");
        foreach (var (token, id) in def.Vocabulary.OrderBy(kv => kv.Value))
            w.WriteNumber(token, id);
        w.WriteEndObject();
        w.WriteStartArray("merges");
        foreach (var (left, right) in def.Merges)
        {
            w.WriteStartArray();
            w.WriteStringValue(left);
            w.WriteStringValue(right);
            w.WriteEndArray();
        }
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
