namespace Microsoft.ML.StepDpo.Text;

/// <summary>
/// A prompt format: a template with <c>{instruction}</c> and the separator that joins it to the reasoning
/// prefix (initial_reason_steps). The built-in formats are exactly those of the Step-DPO authors' train.py
/// (github.com/dvlab-research/Step-DPO).
/// </summary>
/// <param name="Name">Name of the format.</param>
/// <param name="Template">Template text; <c>{instruction}</c> is replaced by the problem.</param>
/// <param name="Separator">Joins the filled template to the reasoning prefix.</param>
public sealed record PromptTemplate(string Name, string Template, string Separator)
{
    /// <summary>The prompt that opens every evaluation answer in the step format.</summary>
    public const string StepPreamble = "Let's think step by step.\nStep 1: ";

    /// <summary>Alpaca: joined to the prefix with a newline.</summary>
    public static PromptTemplate Alpaca { get; } = new("alpaca",
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:", "\n");

    /// <summary>DeepSeek-Math: joined with a space.</summary>
    public static PromptTemplate DeepSeekMath { get; } = new("deepseek-math",
        "User: {instruction}\nPlease reason step by step, and put your final answer within \\boxed{}.\n\nAssistant:", " ");

    /// <summary>Qwen2 ChatML with the boxed instruction: joined with nothing.</summary>
    public static PromptTemplate Qwen2Boxed { get; } = new("qwen2-boxed",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{instruction}\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n", "");

    /// <summary>Plain Qwen ChatML (no boxed instruction): joined with nothing.</summary>
    public static PromptTemplate QwenChat { get; } = new("qwen-chat",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{instruction}<|im_end|>\n<|im_start|>assistant\n", "");

    /// <summary>
    /// Plain: the problem alone, joined to the prefix with a newline ("question\nLet's think step by step.\nStep 1: …").
    /// The format of models trained from scratch on a task's own text, such as the samples' committed arithmetic model.
    /// </summary>
    public static PromptTemplate Plain { get; } = new("plain", "{instruction}", "\n");

    /// <summary>The built-in formats by name (alpaca, deepseek-math, qwen2-boxed, qwen-chat, plain).</summary>
    public static IReadOnlyDictionary<string, PromptTemplate> BuiltIn { get; } =
        new[] { Alpaca, DeepSeekMath, Qwen2Boxed, QwenChat, Plain }.ToDictionary(t => t.Name, StringComparer.OrdinalIgnoreCase);

    /// <summary>The built-in format of that name (case-insensitive); throws with the list of names otherwise.</summary>
    public static PromptTemplate FromName(string name) =>
        BuiltIn.TryGetValue(name ?? "", out var t) ? t
            : throw new ArgumentException($"Unknown prompt template '{name}': use one of {string.Join(", ", BuiltIn.Keys)}.", nameof(name));

    /// <summary>The template with the problem filled in.</summary>
    public string Fill(string instruction) => Template.Replace("{instruction}", instruction ?? string.Empty, StringComparison.Ordinal);

    /// <summary>
    /// The training prompt: template + separator + initial_reason_steps; the template alone when the prefix is empty.
    /// </summary>
    public string Build(string instruction, string? initialReasonSteps)
    {
        string filled = Fill(instruction);
        return string.IsNullOrEmpty(initialReasonSteps) ? filled : filled + Separator + initialReasonSteps;
    }

    /// <summary>The evaluation prompt, which forces the step format: ends with "Let's think step by step.\nStep 1: ".</summary>
    public string BuildForEvaluation(string instruction) => Fill(instruction) + Separator + StepPreamble;
}
