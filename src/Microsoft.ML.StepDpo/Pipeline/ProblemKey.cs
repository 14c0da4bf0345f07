using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.StepDpo.Data;

namespace Microsoft.ML.StepDpo.Pipeline;

/// <summary>
/// The key of a problem in a resumable step-preference output when the input has no id column: a hash of the problem
/// text and its answer, so that adding, deleting or reordering input lines does not change which problems are done.
/// </summary>
internal static partial class ProblemKey
{
    /// <summary>"sha256:" and the first 32 hex digits of SHA-256(problem, NUL, answer).</summary>
    public static string FromText(string problem, string answer)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(problem + "\0" + answer));
        return "sha256:" + Convert.ToHexString(hash, 0, 16).ToLowerInvariant();
    }

    /// <summary>
    /// The problem-text hashes of keys written by versions that keyed rows by number ("row:FNV-1a of the problem", with
    /// no id column). Such a progress record is migrated, not refused: a problem counts as done when its text hash is here.
    /// </summary>
    public static HashSet<ulong> LegacyTextHashes(IEnumerable<string> keys)
    {
        var hashes = new HashSet<ulong>();
        foreach (var key in keys)
        {
            var m = LegacyKey().Match(key);
            if (m.Success) hashes.Add(ulong.Parse(m.Groups[1].ValueSpan, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        }
        return hashes;
    }

    /// <summary>The legacy text hash of <paramref name="problem"/>.</summary>
    public static ulong LegacyTextHash(string problem) => StableHash.Fnv1a64(problem);

    [GeneratedRegex("^[0-9]+:([0-9a-f]{16})$", RegexOptions.CultureInvariant)]
    private static partial Regex LegacyKey();
}
