using System.Security.Cryptography;
using System.Text;

namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>SHA-256 identities of a model: of a Hugging Face folder's files, or of an in-memory model's weights.</summary>
internal static class ModelHash
{
    /// <summary>SHA-256 over config.json and the weight files of a model folder, in a fixed order (streamed).</summary>
    public static string OfFolder(string directory)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var files = new[] { Path.Combine(directory, ModelCheckpoint.ConfigFile) }.Concat(ModelCheckpoint.WeightFiles(directory));
        var buffer = new byte[1 << 20];
        foreach (var f in files)
        {
            using var s = File.OpenRead(f);
            int n;
            while ((n = s.Read(buffer, 0, buffer.Length)) > 0) sha.AppendData(buffer, 0, n);
        }
        return Hex(sha);
    }

    /// <summary>SHA-256 over the names, types, shapes and values of an in-memory model's parameters, in name order.</summary>
    public static string OfWeights(Qwen2ForCausalLM model)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, p) in model.named_parameters().OrderBy(p => p.name, StringComparer.Ordinal))
        {
            sha.AppendData(Encoding.UTF8.GetBytes($"{name}|{p.dtype}|{string.Join(",", p.shape)}|"));
            using var cpu = p.detach().cpu().contiguous();
            sha.AppendData(cpu.bytes);
        }
        return Hex(sha);
    }

    private static string Hex(IncrementalHash sha) => Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
}
