namespace Microsoft.ML.StepDpo.Modeling;
/// <summary>The few tokenizer operations the model code needs.</summary>
internal interface ITextTokenizer
{
    int[] Encode(string text);
    string Decode(ReadOnlySpan<int> ids);
    int? EosId { get; }
}
