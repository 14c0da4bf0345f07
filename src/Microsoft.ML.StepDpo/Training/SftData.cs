using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>Supervised examples: template(prompt) + separator, then the response and EOS (labels on the response and EOS only).</summary>
internal static class SftData
{
    public static List<TokenizedSequence> Tokenize(IEnumerable<(string Prompt, string Response)> rows, ITextTokenizer tokenizer, PromptTemplate template,
        int maxLength, out int empty, out int tooLong)
    {
        empty = tooLong = 0;
        var list = new List<TokenizedSequence>();
        foreach (var (prompt, response) in rows)
        {
            if (string.IsNullOrWhiteSpace(response)) { empty++; continue; }
            var (p, r) = tokenizer.TokenizeSeam(template.Build(prompt, ""), response);
            var ids = p.Concat(r);
            if (tokenizer.EosId is int eos) ids = ids.Append(eos);
            var arr = ids.ToArray();
            if (p.Length == 0) { empty++; continue; }
            if (arr.Length > maxLength) { tooLong++; continue; }
            list.Add(new TokenizedSequence(arr, p.Length));
        }
        return list;
    }
}
