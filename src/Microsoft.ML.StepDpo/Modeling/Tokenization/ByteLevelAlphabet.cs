namespace Microsoft.ML.StepDpo.Modeling.Tokenization;

/// <summary>
/// GPT-2's byte-to-character table used by byte-level BPE: printable bytes stand for themselves, the
/// others (space, control bytes…) for characters from U+0100 on (space is "Ġ", newline "Ċ").
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = Build();

    public static char Map(byte b) => ByteToChar[b];

    /// <summary>The byte-level form of some UTF-8 bytes.</summary>
    public static string Map(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
            chars[i] = ByteToChar[bytes[i]];
        return new string(chars);
    }

    private static char[] Build()
    {
        var table = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            table[b] = printable ? (char)b : (char)next++;
        }
        return table;
    }
}
