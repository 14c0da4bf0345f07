using System.CommandLine;
using System.Diagnostics;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Modeling.Tokenization;

namespace StepDpo.Samples;

/// <summary>Adds token ids to a JSON Lines file with a Hugging Face tokenizer.json (e.g. a Qwen model's).</summary>
internal sealed class TokenizeCommand : ISampleCommand
{
    public Command Build()
    {
        var tokenizer = new Option<string>("--tokenizer") { Description = "A tokenizer.json, or a model folder containing one.", Required = true };
        var input = new Option<FileInfo>("--input") { Description = "Input JSON Lines file.", Required = true };
        var field = new Option<string>("--field") { Description = "The string field to tokenize.", Required = true };
        var output = new Option<FileInfo>("--output") { Description = "Output JSON Lines file: each record with an added 'ids' array.", Required = true };
        var cmd = new Command("tokenize", "Tokenize one field of a JSONL file (special tokens recognised); writes each record with an 'ids' array.")
        {
            tokenizer, input, field, output,
        };
        cmd.SetAction(parse => Run(parse.GetValue(tokenizer)!, parse.GetValue(input)!, parse.GetValue(field)!, parse.GetValue(output)!));
        return cmd;
    }

    // Plain UTF-8 text in the output (no \u escapes for quotes, '+' or non-ASCII).
    private static readonly JsonSerializerOptions s_json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static int Run(string tokenizerPath, FileInfo input, string field, FileInfo output)
    {
        JsonlInput.RequireFile(input, "--input");
        JsonlInput.RequireDistinct(input, output);
        if (!Directory.Exists(tokenizerPath) && !File.Exists(tokenizerPath))
            throw new UsageException($"{Path.GetFullPath(tokenizerPath)}: no such file or folder (--tokenizer); give a tokenizer.json or a model folder holding one.");
        JsonlInput.CheckFields(input, ("--field", field));
        var sw = Stopwatch.StartNew();
        var tokenizer = Directory.Exists(tokenizerPath)
            ? ByteLevelBpeTokenizer.FromDirectory(tokenizerPath)
            : ByteLevelBpeTokenizer.FromFile(tokenizerPath);
        double loadSeconds = sw.Elapsed.TotalSeconds;
        sw.Restart();
        int records = 0, lineNumber = 0;
        long tokens = 0;
        // Written to a temporary file next to the output, which replaces it only once every record is written.
        AtomicFile.Write(output.FullName, stream =>
        {
            using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false), bufferSize: -1, leaveOpen: true);
            foreach (var line in File.ReadLines(input.FullName))
            {
                lineNumber++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                JsonNode? node;
                try
                {
                    node = JsonNode.Parse(line);
                }
                catch (JsonException e)
                {
                    throw new InvalidDataException($"{input.FullName}:{lineNumber}: invalid JSON ({e.Message}); fix or remove the line.");
                }
                if (node is not JsonObject record)
                    throw new InvalidDataException($"{input.FullName}:{lineNumber}: expected a JSON object.");
                if (record[field] is not JsonValue value || !value.TryGetValue(out string? text))
                    throw new InvalidDataException($"{input.FullName}:{lineNumber}: no string field '{field}'.");
                int[] ids = tokenizer.Encode(text);
                record.Remove("ids");
                record["ids"] = new JsonArray(ids.Select(id => (JsonNode)id).ToArray());
                writer.WriteLine(record.ToJsonString(s_json));
                records++;
                tokens += ids.Length;
            }
            return records;
        });
        double seconds = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"Loaded the tokenizer in {loadSeconds:F2} s; wrote {records} records, {tokens} tokens to {output.FullName} " +
            $"in {seconds:F2} s ({records / seconds:F0} records/s, {tokens / seconds:F0} tokens/s, JSON reading and writing included).");
        return 0;
    }
}
