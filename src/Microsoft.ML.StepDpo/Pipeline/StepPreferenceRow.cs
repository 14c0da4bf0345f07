using System.Text.Encodings.Web;
using System.Text.Json;

namespace Microsoft.ML.StepDpo.Pipeline;

/// <summary>One Math-Step-DPO-10K row (exact field names and order).</summary>
internal sealed record StepPreferenceRow(string Dataset, string Prompt, string InitialReasonSteps, string Chosen, string Rejected,
    string FullChosen, string FullRejected, string Answer)
{
    private static readonly JsonWriterOptions s_options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The row as one JSON line (with the trailing newline), UTF-8.</summary>
    public byte[] ToJsonLine()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, s_options))
        {
            w.WriteStartObject();
            w.WriteString("dataset", Dataset);
            w.WriteString("prompt", Prompt);
            w.WriteString("initial_reason_steps", InitialReasonSteps);
            w.WriteString("chosen", Chosen);
            w.WriteString("rejected", Rejected);
            w.WriteString("full_chosen", FullChosen);
            w.WriteString("full_rejected", FullRejected);
            w.WriteString("answer", Answer);
            w.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }
}
