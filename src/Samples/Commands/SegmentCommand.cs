using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Text;

namespace StepDpo.Samples;

/// <summary>Adds a "steps" array to each row of a JSONL file by segmenting one of its text fields.</summary>
internal sealed class SegmentCommand : ISampleCommand
{
    public Command Build()
    {
        var input = new Option<FileInfo>("--input") { Description = "Input JSONL file.", Required = true };
        var field = new Option<string>("--field") { Description = "Field holding the step-by-step solution.", Required = true };
        var mode = new Option<string>("--mode") { Description = "auto | markers | paragraphs | lines.", DefaultValueFactory = _ => "auto" };
        mode.AcceptOnlyFromAmong("auto", "markers", "paragraphs", "lines");
        var output = new Option<FileInfo>("--output") { Description = "Output JSONL file: each input row (its top-level fields) plus \"steps\".", Required = true };
        var cmd = new Command("segment", "Split solutions into steps (StepSegmenter) and write them as a \"steps\" array.") { input, field, mode, output };
        cmd.SetAction(parse => Run(parse.GetValue(input)!, parse.GetValue(field)!, parse.GetValue(mode)!, parse.GetValue(output)!));
        return cmd;
    }

    private static int Run(FileInfo input, string field, string mode, FileInfo output)
    {
        JsonlInput.RequireFile(input, "--input");
        JsonlInput.RequireDistinct(input, output);
        JsonlInput.CheckFields(input, ("--field", field));
        var ml = new MLContext(seed: 0);
        var data = ml.Data.LoadFromJsonl(input.FullName, new[] { new JsonlField(field) }, new JsonlReadOptions { RawJsonColumnName = EvalCommand.RawJson });
        var segMode = mode switch
        {
            "markers" => SegmentationMode.StepMarkers,
            "paragraphs" => SegmentationMode.Paragraphs,
            "lines" => SegmentationMode.Lines,
            _ => SegmentationMode.Auto,
        };
        var model = ml.Transforms.SegmentSteps("steps", field, segMode).Fit(data);
        long rows = ml.Data.SaveAsJsonlPassThrough(model.Transform(data), output.FullName, EvalCommand.RawJson, "steps");
        Console.WriteLine($"segmented {rows} rows into {output.FullName}");
        return 0;
    }
}
