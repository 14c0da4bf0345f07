namespace Microsoft.ML.StepDpo.Modeling.Tokenization;

/// <summary>Splits the tokens of prompt + response into a prompt part and a response part.</summary>
internal static class PromptResponseSeam
{
    /// <summary>
    /// Tokenizes the prompt and the prompt + response; where BPE merges across the seam (a prompt ending in a
    /// space or a partial word), the response starts at the first token where the two differ (TRL's
    /// build_tokenized_answer idea). The two parts always concatenate to the tokens of prompt + response.
    /// </summary>
    public static (int[] PromptIds, int[] ResponseIds) TokenizeSeam(this ITextTokenizer tokenizer, string prompt, string response)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(response);
        int[] full = tokenizer.Encode(prompt + response);
        int[] alone = tokenizer.Encode(prompt);
        int common = full.AsSpan().CommonPrefixLength(alone);
        return (full[..common], full[common..]);
    }
}
