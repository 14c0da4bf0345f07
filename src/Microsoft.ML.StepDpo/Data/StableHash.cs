using System.Text;

namespace Microsoft.ML.StepDpo.Data;

/// <summary>FNV-1a 64 over UTF-8: stable across processes and .NET versions (unlike string.GetHashCode).</summary>
internal static class StableHash
{
    public static ulong Fnv1a64(string text)
    {
        ulong hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }

        return hash;
    }
}
