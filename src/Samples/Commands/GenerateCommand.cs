using System.CommandLine;
using Microsoft.Extensions.AI;
using Microsoft.ML.StepDpo.Modeling;

namespace StepDpo.Samples;

/// <summary>
/// Continues a prompt with a Hugging Face model folder (config.json + safetensors + tokenizer.json), printing the text
/// as it is generated: the folder is loaded as a Microsoft.Extensions.AI chat client whose "template" is the prompt itself.
/// </summary>
internal sealed class GenerateCommand : ISampleCommand
{
    public Command Build()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Model folder (config.json, model.safetensors[.index.json], tokenizer.json).", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "Prompt text, continued as it is (no chat template).", Required = true };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Most tokens to generate.", DefaultValueFactory = _ => 256 };
        var temperature = new Option<float>("--temperature") { Description = "0 = greedy.", DefaultValueFactory = _ => 0f };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling threshold (1 = off).", DefaultValueFactory = _ => 1f };
        var topK = new Option<int>("--top-k") { Description = "Keep the k most likely tokens (0 = off).", DefaultValueFactory = _ => 0 };
        var seed = new Option<long>("--seed") { Description = "Sampling seed.", DefaultValueFactory = _ => 0L };
        var stop = new Option<string[]>("--stop") { Description = "Stop string (repeatable), e.g. \"\\nStep \". Escapes \\n and \\t are understood.", AllowMultipleArgumentsPerToken = false };
        var cmd = new Command("generate", "Generate text with a Qwen2/Llama checkpoint, streamed as it is generated.") { model, prompt, maxNew, temperature, topP, topK, seed, stop };
        cmd.SetAction((p, ct) => Run(p.GetValue(model)!, p.GetValue(prompt)!, new ChatOptions
        {
            MaxOutputTokens = p.GetValue(maxNew),
            Temperature = p.GetValue(temperature),
            TopP = p.GetValue(topP),
            TopK = p.GetValue(topK),
            Seed = p.GetValue(seed),
            StopSequences = (p.GetValue(stop) ?? Array.Empty<string>()).Select(s => s.Replace("\\n", "\n").Replace("\\t", "\t")).ToList(),
        }, ct));
        return cmd;
    }

    private static async Task<int> Run(DirectoryInfo dir, string prompt, ChatOptions options, CancellationToken ct)
    {
        if (!dir.Exists) { Console.Error.WriteLine($"No such model folder: {dir.FullName}"); return 2; }
        // The prompt is the whole input: render the conversation as the text of its messages, with no end-of-turn marker.
        using var client = LocalChatClient.Load(dir.FullName, messages => string.Concat(messages.Select(m => m.Text)), endOfTurn: null);
        await foreach (var update in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, prompt)], options, ct))
            Console.Write(update.Text);
        Console.WriteLine();
        return 0;
    }
}
