using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Persistence;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.StepDpo.Text;

/// <summary>Row types and the stateless factory of the segmenter's custom mapping (see <see cref="PersistedMapping"/>).</summary>
[CustomMappingFactoryAttribute(ContractName)]
internal sealed class StepSegmenterMapping : CustomMappingFactory<StepSegmenterMapping.Input, StepSegmenterMapping.Output>
{
    public const string ContractName = "Microsoft.ML.StepDpo.StepSegmenter.v1";
    public const string ConfigColumn = "__StepSegmenter_Config";
    public const string TextColumn = "__StepSegmenter_Text";
    public const string StepsColumn = "__StepSegmenter_Steps";
    public const string CountColumn = "__StepSegmenter_Count";
    public const string OffsetsColumn = "__StepSegmenter_Offsets";

    public static readonly string[] InternalColumns = { ConfigColumn, TextColumn, StepsColumn, CountColumn, OffsetsColumn };

    private static readonly ConcurrentDictionary<string, Regex> s_patterns = new();

    public sealed class Input
    {
        [ColumnName(ConfigColumn)] public string Config = "";
        [ColumnName(TextColumn)] public string Text = "";
    }

    public sealed class Output
    {
        [ColumnName(StepsColumn)] public string[] Steps = Array.Empty<string>();
        [ColumnName(CountColumn)] public int Count;
        [ColumnName(OffsetsColumn)] public int[] Offsets = Array.Empty<int>();
    }

    public override Action<Input, Output> GetMapping() => Map;

    public static void Map(Input input, Output output)
    {
        var settings = PersistedMapping.ReadConfig<SegmentationSettings>(input.Config);
        Regex? custom = settings.CustomPattern is null ? null : s_patterns.GetOrAdd(settings.CustomPattern, StepSegmentation.CompileCustom);
        var steps = StepSegmentation.Segment(input.Text, settings, custom);
        output.Steps = new string[steps.Count];
        output.Offsets = new int[steps.Count];
        for (int i = 0; i < steps.Count; i++)
        {
            output.Steps[i] = steps[i].Text;
            output.Offsets[i] = steps[i].Offset;
        }
        output.Count = steps.Count;
    }
}
