using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.StepDpo.Answers;

/// <summary>Settings the saved ExtractAnswer model carries.</summary>
internal sealed class ExtractAnswerSettings
{
    public bool SkipUnits { get; set; }
}

/// <summary>Row types and the stateless factory of the ExtractAnswer custom mapping (see Persistence/PersistedMapping.cs).</summary>
[CustomMappingFactoryAttribute(ContractName)]
internal sealed class ExtractAnswerMapping : CustomMappingFactory<ExtractAnswerMapping.Input, ExtractAnswerMapping.Output>
{
    public const string ContractName = "Microsoft.ML.StepDpo.ExtractAnswer.v1";
    public const string ConfigColumn = "__ExtractAnswer_Config";
    public const string TextColumn = "__ExtractAnswer_Text";
    public const string AnswerColumn = "__ExtractAnswer_Answer";
    public static readonly string[] InternalColumns = { ConfigColumn, TextColumn, AnswerColumn };

    public sealed class Input
    {
        [ColumnName(ConfigColumn)] public string Config = "";
        [ColumnName(TextColumn)] public string Text = "";
    }

    public sealed class Output
    {
        [ColumnName(AnswerColumn)] public string Answer = "";
    }

    public override Action<Input, Output> GetMapping() => Map;

    public static void Map(Input input, Output output)
    {
        var settings = Persistence.PersistedMapping.ReadConfig<ExtractAnswerSettings>(input.Config);
        output.Answer = AnswerNormalizer.Normalize(AnswerExtractor.ExtractRaw(input.Text), settings.SkipUnits);
    }
}
