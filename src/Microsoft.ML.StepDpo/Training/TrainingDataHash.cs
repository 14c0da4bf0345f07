using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>SHA-256 over the tokenized training examples in order: what a checkpoint records as "its data".</summary>
internal static class TrainingDataHash
{
    public static string Of<TExample>(IReadOnlyList<TExample> examples)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var example in examples) Append(sha, example);
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    private static void Append(IncrementalHash sha, object? example)
    {
        switch (example)
        {
            case TokenizedPair p:
                Ids(sha, p.Chosen); Int(sha, p.ChosenResponseStart);
                Ids(sha, p.Rejected); Int(sha, p.RejectedResponseStart);
                break;
            case TokenizedSequence s:
                Ids(sha, s.Ids); Int(sha, s.ResponseStart);
                break;
            case TokenizedSequence[] batch:
                Int(sha, batch.Length);
                foreach (var s in batch) Append(sha, s);
                break;
            default:
                throw new NotSupportedException($"Training examples of type {example?.GetType().Name ?? "null"} cannot be hashed.");
        }
    }

    // Lengths first, so that [1,2][3] and [1][2,3] hash differently.
    private static void Ids(IncrementalHash sha, int[] ids)
    {
        Int(sha, ids.Length);
        sha.AppendData(MemoryMarshal.AsBytes(ids.AsSpan()));
    }

    private static void Int(IncrementalHash sha, int value) => sha.AppendData(BitConverter.GetBytes(value));
}
