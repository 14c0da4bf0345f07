using System.CommandLine;
using Microsoft.ML.StepDpo.Modeling;
using Spectre.Console;

namespace StepDpo.Samples;

/// <summary>Samples a continuation from a Hugging Face model folder (config.json + safetensors + tokenizer.json).</summary>
internal sealed class GenerateCommand : ISampleCommand
{
    public Command Build()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Model folder (config.json, model.safetensors[.index.json], tokenizer.json).", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "Prompt text.", Required = true };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Most tokens to generate.", DefaultValueFactory = _ => 256 };
        var temperature = new Option<double>("--temperature") { Description = "0 = greedy.", DefaultValueFactory = _ => 0.0 };
        var topP = new Option<double>("--top-p") { Description = "Nucleus sampling threshold (1 = off).", DefaultValueFactory = _ => 1.0 };
        var topK = new Option<int>("--top-k") { Description = "Keep the k most likely tokens (0 = off).", DefaultValueFactory = _ => 0 };
        var seed = new Option<long>("--seed") { Description = "Sampling seed.", DefaultValueFactory = _ => 0L };
        var stop = new Option<string[]>("--stop") { Description = "Stop string (repeatable), e.g. \"\\nStep \". Escapes \\n and \\t are understood.", AllowMultipleArgumentsPerToken = false };
        var dtype = new Option<string?>("--dtype") { Description = "float32 or bfloat16 (default: the checkpoint's torch_dtype)." };
        var cmd = new Command("generate", "Generate text with a Qwen2/Llama checkpoint.") { model, prompt, maxNew, temperature, topP, topK, seed, stop, dtype };
        cmd.SetAction(p => Run(p.GetValue(model)!, p.GetValue(prompt)!, new GenerationOptions
        {
            MaxNewTokens = p.GetValue(maxNew),
            Temperature = p.GetValue(temperature),
            TopP = p.GetValue(topP),
            TopK = p.GetValue(topK),
            Seed = p.GetValue(seed),
            StopStrings = (p.GetValue(stop) ?? Array.Empty<string>()).Select(s => s.Replace("\\n", "\n").Replace("\\t", "\t")).ToArray(),
        }, p.GetValue(dtype)));
        return cmd;
    }

    private static int Run(DirectoryInfo dir, string prompt, GenerationOptions options, string? dtype)
    {
        TorchRuntime.EnsureLoaded();
        var tokenizer = LoadTokenizer(dir.FullName);
        using var model = ModelCheckpoint.Load(dir.FullName, dtype is null ? null : Qwen2Config.ParseDtype(dtype));
        var eos = new[] { tokenizer.EosId, model.Config.EosTokenId }.OfType<int>().Distinct().ToArray();
        var printed = 0;
        var tokens = new List<int>();
        options = options with
        {
            EosIds = eos,
            // Stream: print the newly decoded suffix after each token.
            OnToken = (_, t) =>
            {
                tokens.Add(t);
                var text = tokenizer.Decode(tokens.ToArray());
                if (text.Length > printed) { Console.Write(text[printed..]); printed = text.Length; }
            },
        };
        var result = new TextGenerator(model, ids => tokenizer.Decode(ids)).Generate(tokenizer.Encode(prompt), options);
        Console.WriteLine();
        AnsiConsole.MarkupLine($"[grey]{result.Tokens.Length} tokens, stopped by {result.Reason}{(result.StopString is null ? "" : $" ({Markup.Escape(result.StopString.Replace("\n", "\\n"))})")}[/]");
        return 0;
    }

    // INTEGRATION SEAM: the tokenizer.json loader lives on the tokenizer branch. Wire this one line to it,
    // e.g. `return TokenizerLoader.Load(directory);` returning an ITextTokenizer adapter.
    private static ITextTokenizer LoadTokenizer(string directory) =>
        throw new NotSupportedException($"No tokenizer.json loader is wired into the generate command yet (folder '{directory}').");
}
