using System.Text.Json;
using Microsoft.ML.StepDpo.Modeling.Tokenization;

namespace Microsoft.ML.StepDpo.Tests.Tokenization;

/// <summary>The real Qwen tokenizer (fetched by the test project's build), its Rust oracle and the corpus, loaded once.</summary>
internal static class TokenizerFixtures
{
    public static string QwenDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "Fixtures", "qwen3");

    public static string QwenJson => Path.Combine(QwenDirectory, "tokenizer.json");

    private static readonly Lazy<ByteLevelBpeTokenizer> LazyQwen = new(() => ByteLevelBpeTokenizer.FromDirectory(QwenDirectory));

    private static readonly Lazy<global::Tokenizers.DotNet.Tokenizer> LazyOracle = new(() => new global::Tokenizers.DotNet.Tokenizer(QwenJson));

    private static readonly Lazy<string[]> LazyCorpus = new(() =>
        File.ReadLines(Path.Combine(AppContext.BaseDirectory, "Tokenization", "Resources", "math-corpus.jsonl"))
            .Where(l => l.Length > 0)
            .Select(l => JsonSerializer.Deserialize<string>(l)!)
            .ToArray());

    public static ByteLevelBpeTokenizer Qwen => LazyQwen.Value;

    /// <summary>Hugging Face tokenizers (Rust) on the same file. Its decode always skips special tokens.</summary>
    public static global::Tokenizers.DotNet.Tokenizer Oracle => LazyOracle.Value;

    public static string[] Corpus => LazyCorpus.Value;

    public static int[] OracleEncode(global::Tokenizers.DotNet.Tokenizer oracle, string text) =>
        oracle.Encode(text).Select(i => checked((int)i)).ToArray();

    public static string Show(int[] ids) => "[" + string.Join(",", ids) + "]";

    public static string NewTempDirectory()
    {
        string dir = Path.Combine(Path.GetTempPath(), "stepdpo-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
