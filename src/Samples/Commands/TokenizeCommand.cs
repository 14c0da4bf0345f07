using System.CommandLine;
using System.Diagnostics;
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

    private static int Run(string tokenizerPath, FileInfo input, string field, FileInfo output)
    {
        var sw = Stopwatch.StartNew();
        var tokenizer = Directory.Exists(tokenizerPath)
            ? ByteLevelBpeTokenizer.FromDirectory(tokenizerPath)
            : ByteLevelBpeTokenizer.FromFile(tokenizerPath);
        double loadSeconds = sw.Elapsed.TotalSeconds;
        sw.Restart();
        using var reader = new StreamReader(input.FullName);
        using var writer = File.Create(output.FullName);
        var (records, tokens) = JsonlFieldTokenizer.Run(text => tokenizer.Encode(text), reader, writer, field);
        double seconds = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"Loaded the tokenizer in {loadSeconds:F2} s; wrote {records} records, {tokens} tokens to {output.FullName} " +
            $"in {seconds:F2} s ({records / seconds:F0} records/s, {tokens / seconds:F0} tokens/s, JSON reading and writing included).");
        return 0;
    }
}
