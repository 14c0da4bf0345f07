using Microsoft.ML.StepDpo.Modeling;
using Microsoft.ML.StepDpo.Modeling.Tokenization;
using Microsoft.ML.StepDpo.Text;

namespace Microsoft.ML.StepDpo.Training;

/// <summary>One preference row as text (the Math-Step-DPO-10K fields the trainer reads).</summary>
internal sealed record PreferenceRow(string Prompt, string InitialReasonSteps, string Chosen, string Rejected);

/// <summary>Why rows were left out of training (they are counted, never dropped silently).</summary>
internal sealed class PairBuildReport
{
    public int Rows { get; set; }
    public int Used { get; set; }
    public int EmptyResponse { get; set; }
    public int TooLong { get; set; }
    public int PromptTruncated { get; set; }
    public int ResponseTruncated { get; set; }

    public override string ToString() =>
        $"{Used}/{Rows} rows used; {EmptyResponse} with an empty chosen or rejected step, {TooLong} too long even after truncation; " +
        $"{PromptTruncated} prompts and {ResponseTruncated} responses truncated.";
}

/// <summary>
/// Turns text rows into token pairs exactly as the Step-DPO authors' trainer does (train.py and stepdpo_trainer.py
/// in github.com/dvlab-research/Step-DPO, after TRL's DPOTrainer): sequence =
/// template(prompt) + separator + initial_reason_steps + step; the context/step seam is tokenized jointly
/// (where BPE merges across it, the step starts at the first token that differs); optional EOS after the
/// step (off by default: a step is not the end of an answer); if context + step exceeds MaxLength the
/// context keeps its last MaxPromptLength tokens, then the step is cut to fit.
/// </summary>
internal sealed class PreferencePairBuilder
{
    private readonly ITextTokenizer _tokenizer;
    private readonly PromptTemplate _template;
    private readonly int _maxLength, _maxPromptLength;
    private readonly bool _appendEos;

    public PreferencePairBuilder(ITextTokenizer tokenizer, PromptTemplate template, int maxLength, int maxPromptLength, bool appendEos)
    {
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        _template = template ?? throw new ArgumentNullException(nameof(template));
        if (maxLength < 2) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "Must be at least 2.");
        if (maxPromptLength < 1 || maxPromptLength >= maxLength)
            throw new ArgumentOutOfRangeException(nameof(maxPromptLength), maxPromptLength, "Must be at least 1 and less than the maximum length.");
        if (appendEos && tokenizer.EosId is null)
            throw new ArgumentException("AppendEos is set but the tokenizer has no end-of-sequence token.", nameof(appendEos));
        _maxLength = maxLength;
        _maxPromptLength = maxPromptLength;
        _appendEos = appendEos;
    }

    /// <summary>The text that precedes the step.</summary>
    public string Context(PreferenceRow row) => _template.Build(row.Prompt, row.InitialReasonSteps);

    /// <summary>One side: (all ids, index of the first response id), truncated; null when it cannot fit.</summary>
    public (int[] Ids, int ResponseStart, bool PromptCut, bool ResponseCut)? Side(string context, string response)
    {
        var (promptIds, responseIds) = _tokenizer.TokenizeSeam(context, response);
        if (_appendEos) responseIds = responseIds.Append(_tokenizer.EosId!.Value).ToArray();
        if (responseIds.Length == 0 || promptIds.Length == 0) return null;
        bool promptCut = false, responseCut = false;
        if (promptIds.Length + responseIds.Length > _maxLength)
        {
            if (promptIds.Length > _maxPromptLength)
            {
                promptIds = promptIds[^_maxPromptLength..];
                promptCut = true;
            }
            int room = _maxLength - promptIds.Length;
            if (room <= 0) return null;
            if (responseIds.Length > room) { responseIds = responseIds[..room]; responseCut = true; }
        }
        return (promptIds.Concat(responseIds).ToArray(), promptIds.Length, promptCut, responseCut);
    }

    public List<TokenizedPair> Build(IEnumerable<PreferenceRow> rows, PairBuildReport report, List<int>? usedRowIndices = null)
    {
        var pairs = new List<TokenizedPair>();
        int index = -1;
        foreach (var row in rows)
        {
            index++;
            report.Rows++;
            if (string.IsNullOrWhiteSpace(row.Chosen) || string.IsNullOrWhiteSpace(row.Rejected)) { report.EmptyResponse++; continue; }
            string context = Context(row);
            var c = Side(context, row.Chosen);
            var r = Side(context, row.Rejected);
            if (c is null || r is null) { report.TooLong++; continue; }
            if (c.Value.PromptCut || r.Value.PromptCut) report.PromptTruncated++;
            if (c.Value.ResponseCut || r.Value.ResponseCut) report.ResponseTruncated++;
            pairs.Add(new TokenizedPair(c.Value.Ids, c.Value.ResponseStart, r.Value.Ids, r.Value.ResponseStart));
            usedRowIndices?.Add(index);
            report.Used++;
        }
        return pairs;
    }
}
