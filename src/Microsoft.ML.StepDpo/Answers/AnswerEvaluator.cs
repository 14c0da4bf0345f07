using Microsoft.ML.StepDpo.Data;

namespace Microsoft.ML.StepDpo.Answers;

/// <summary>Scores the final answers of a data view against references (see <see cref="AnswerEquivalence"/>).</summary>
internal static class AnswerEvaluator
{
    public static AnswerMetrics Evaluate(IDataView data, string predictionColumnName, string referenceColumnName,
        string? groupColumnName, bool extractFromPrediction)
    {
        if (data is null) throw new ArgumentNullException(nameof(data));
        var pred = TextColumn(data.Schema, predictionColumnName);
        var gold = TextColumn(data.Schema, referenceColumnName);
        var group = groupColumnName is null ? (DataViewSchema.Column?)null : TextColumn(data.Schema, groupColumnName);
        var needed = new List<DataViewSchema.Column> { pred, gold };
        if (group is { } g0) needed.Add(g0);
        using var cursor = data.GetRowCursor(needed);
        var predGet = cursor.GetGetter<ReadOnlyMemory<char>>(pred);
        var goldGet = cursor.GetGetter<ReadOnlyMemory<char>>(gold);
        var groupGet = group is { } g ? cursor.GetGetter<ReadOnlyMemory<char>>(g) : null;
        ReadOnlyMemory<char> p = default, r = default, k = default;
        long n = 0, correct = 0;
        string? lastRaw = null, lastNormalized = null;
        var groups = new Dictionary<string, (long N, long Correct)>(StringComparer.Ordinal);
        while (cursor.MoveNext())
        {
            predGet(ref p);
            goldGet(ref r);
            string answer = extractFromPrediction ? AnswerExtractor.Extract(p.ToString()) : AnswerNormalizer.Normalize(p.ToString());
            // Rows of one problem usually follow each other: the normalized reference is reused while it repeats.
            if (lastRaw is null || !r.Span.SequenceEqual(lastRaw.AsSpan()))
            {
                lastRaw = r.ToString();
                lastNormalized = AnswerEquivalence.NormalizeReference(lastRaw);
            }
            bool ok = AnswerEquivalence.AreEquivalent(answer, lastNormalized);
            n++;
            if (ok) correct++;
            if (groupGet is not null)
            {
                groupGet(ref k);
                string key = k.ToString();
                groups.TryGetValue(key, out var c);
                groups[key] = (c.N + 1, c.Correct + (ok ? 1 : 0));
            }
        }
        return new AnswerMetrics(n, correct)
        {
            PerGroup = groups.OrderBy(e => e.Key, StringComparer.Ordinal).ToDictionary(e => e.Key, e => new AnswerMetrics(e.Value.N, e.Value.Correct)),
        };
    }

    private static DataViewSchema.Column TextColumn(DataViewSchema schema, string name) => SchemaChecks.TextColumn(schema, name);
}
