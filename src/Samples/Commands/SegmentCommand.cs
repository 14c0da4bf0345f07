using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
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
        var ml = new MLContext(seed: 0);
        var fields = JsonlFieldNames.Read(input.FullName);
        if (!fields.Contains(field)) fields.Add(field);
        var data = ml.Data.LoadFromJsonl(input.FullName, fields.ToArray());
        var segMode = mode switch
        {
            "markers" => SegmentationMode.StepMarkers,
            "paragraphs" => SegmentationMode.Paragraphs,
            "lines" => SegmentationMode.Lines,
            _ => SegmentationMode.Auto,
        };
        var model = ml.Transforms.SegmentSteps("steps", field, segMode).Fit(data);
        long rows = ml.Data.SaveAsJsonl(model.Transform(data), output.FullName, fields.Where(f => f != "steps").Append("steps").ToArray());
        Console.WriteLine($"segmented {rows} rows into {output.FullName}");
        return 0;
    }
}

/// <summary>The top-level field names of a JSONL file, in first-seen order (one streaming pass).</summary>
internal static class JsonlFieldNames
{
    public static List<string> Read(string path)
    {
        var names = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(line);
                if (doc.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object) continue;
                foreach (var p in doc.RootElement.EnumerateObject())
                    if (seen.Add(p.Name)) names.Add(p.Name);
            }
            catch (System.Text.Json.JsonException) { } // the reader reports malformed lines with file:line
        }
        return names;
    }
}
