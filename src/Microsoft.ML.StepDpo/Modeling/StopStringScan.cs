namespace Microsoft.ML.StepDpo.Modeling;

/// <summary>
/// Finds the stop string a sequence has just completed without decoding the whole sequence at every token. The
/// sequence is checked after each token, so a new occurrence must end in the newest token's text: only the last few
/// tokens are decoded (enough for the longest stop string, even at one byte per token and three UTF-8 bytes per
/// character), and the whole text only when that tail contains a stop string. The answer is then the plain check's
/// on the whole text (the first stop string, in the given order, that occurs in it).
/// </summary>
/// <remarks>Assumes decoding is concatenative (the text of a sequence is the texts of its parts joined, up to the
/// character a cut splits), as it is for byte-level BPE and character tokenizers.</remarks>
internal sealed class StopStringScan
{
    private readonly IReadOnlyList<string> stopStrings;
    private readonly Func<int[], string> decode;
    private readonly int window;

    public StopStringScan(IReadOnlyList<string> stopStrings, Func<int[], string> decode)
    {
        this.stopStrings = stopStrings;
        this.decode = decode;
        window = 3 * stopStrings.Max(s => s.Length) + 2;
    }

    /// <summary>The text before the stop string and the stop string, or null when the tokens contain none yet.</summary>
    public (string Text, string Stop)? Check(List<int> tokens)
    {
        int take = Math.Min(tokens.Count, window);
        string tail = decode(tokens.GetRange(tokens.Count - take, take).ToArray());
        if (!stopStrings.Any(s => tail.Contains(s, StringComparison.Ordinal))) return null;
        return Find(decode(tokens.ToArray()), stopStrings);
    }

    /// <summary>The plain check on a whole text.</summary>
    public static (string Text, string Stop)? Find(string text, IReadOnlyList<string> stopStrings)
    {
        foreach (var s in stopStrings)
        {
            int at = text.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0) return (text[..at], s);
        }
        return null;
    }
}
