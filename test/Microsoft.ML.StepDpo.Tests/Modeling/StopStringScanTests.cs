using Microsoft.ML.StepDpo.Modeling;

namespace Microsoft.ML.StepDpo.Tests.Modeling;

[TestClass]
public sealed class StopStringScanTests
{
    // Tokens of one to three characters, so a stop string can span several tokens and start inside one.
    private static readonly string[] Pieces = { "a", "b", "ab", "ba", "abc", "c", "\n", "\nS", "Step", " ", "é", "日本" };

    private static string Decode(int[] ids) => string.Concat(ids.Select(i => Pieces[i]));

    [TestMethod]
    public void FindsWhatTheWholeTextCheckFindsAtTheSameToken()
    {
        var rnd = new Random(3);
        string[][] stopSets = { new[] { "abc" }, new[] { "\nStep", "ba" }, new[] { "c\n", "日本 " }, new[] { "bab", "a" } };
        int hits = 0;
        for (int trial = 0; trial < 400; trial++)
        {
            var stops = stopSets[trial % stopSets.Length];
            var scan = new StopStringScan(stops, Decode);
            var tokens = new List<int>();
            for (int t = 0; t < 40; t++)
            {
                tokens.Add(rnd.Next(Pieces.Length));
                var plain = StopStringScan.Find(Decode(tokens.ToArray()), stops);
                Assert.AreEqual(plain, scan.Check(tokens), $"trial {trial}, token {t}");
                if (plain is not null) { hits++; break; }
            }
        }
        Assert.IsGreaterThan(100, hits);
    }
}
