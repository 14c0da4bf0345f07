namespace Microsoft.ML.StepDpo.Training;

/// <summary>
/// One preference pair after tokenization. Each side is the token sequence of context + response as the
/// tokenizer produces it for the joined text; <c>*ResponseStart</c> is the index of the first response
/// token (where BPE merges across the seam, the tokens before it may differ between the two sides).
/// Only response tokens carry labels.
/// </summary>
internal sealed record TokenizedPair(int[] Chosen, int ChosenResponseStart, int[] Rejected, int RejectedResponseStart)
{
    /// <summary>Length of the longest common token prefix of the two sides that lies inside both contexts.</summary>
    public int SharedPrefixLength
    {
        get
        {
            int max = Math.Min(ChosenResponseStart, RejectedResponseStart);
            int n = 0;
            while (n < max && Chosen[n] == Rejected[n]) n++;
            return n;
        }
    }

    /// <summary>Checks the invariants every batch builder relies on.</summary>
    public void Validate()
    {
        if (ChosenResponseStart < 1 || RejectedResponseStart < 1)
            throw new ArgumentException("A pair needs at least one context token before each response.");
        if (ChosenResponseStart >= Chosen.Length || RejectedResponseStart >= Rejected.Length)
            throw new ArgumentException("A pair needs at least one response token on each side.");
    }
}
