using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.StepDpo.Scoring;
using Spectre.Console;

namespace StepDpo.Samples;

/// <summary>Scores solutions step by step with a saved Step-DPO model (ML.NET zip).</summary>
internal sealed class ScoreCommand : ISampleCommand
{
    public Command Build()
    {
        var model = new Option<FileInfo>("--model") { Description = "Step scorer zip written by `train`.", Required = true };
        var input = new Option<FileInfo>("--input") { Description = "JSONL with the problems and solutions.", Required = true };
        var promptField = new Option<string>("--prompt-field") { Description = "Problem field.", DefaultValueFactory = _ => "prompt" };
        var solutionField = new Option<string>("--solution-field") { Description = "Solution field.", DefaultValueFactory = _ => "solution" };
        var output = new Option<FileInfo>("--output") { Description = "Output JSONL: each input row plus step_rewards and first_error_step.", Required = true };
        var cmd = new Command("score", "Score solutions step by step with a saved step scorer.") { model, input, promptField, solutionField, output };
        cmd.SetAction(p => Run(p.GetValue(model)!, p.GetValue(input)!, p.GetValue(promptField)!, p.GetValue(solutionField)!, p.GetValue(output)!));
        return cmd;
    }

    // Plain UTF-8 text in the output (no \u escapes for quotes, '+' or non-ASCII).
    private static readonly System.Text.Json.JsonSerializerOptions s_json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private sealed class Row { public string prompt { get; set; } = ""; public string solution { get; set; } = ""; }
    private sealed class Scored { public float[] StepRewards { get; set; } = Array.Empty<float>(); public int FirstErrorStep { get; set; } }

    private static int Run(FileInfo model, FileInfo input, string promptField, string solutionField, FileInfo output)
    {
        if (!model.Exists) { AnsiConsole.MarkupLineInterpolated($"[red]No such model: {model.FullName}[/]"); return 2; }
        if (!input.Exists) { AnsiConsole.MarkupLineInterpolated($"[red]No such file: {input.FullName}[/]"); return 2; }
        var ml = new MLContext(0);
        ml.ComponentCatalog.RegisterAssembly(typeof(StepScoringTransformer).Assembly);
        var transformer = ml.Model.Load(model.FullName, out _);
        var engine = ml.Model.CreatePredictionEngine<Row, Scored>(transformer);
        var lines = File.ReadLines(input.FullName).Where(l => !string.IsNullOrWhiteSpace(l)).ToList();
        output.Directory?.Create();
        using var writer = new StreamWriter(output.FullName);
        ConsoleProgress.Run("scoring", progress =>
        {
            int lineNo = 0;
            foreach (var line in lines)
            {
                lineNo++;
                var obj = JsonNode.Parse(line) as JsonObject ?? throw new InvalidDataException($"{input.FullName}:{lineNo}: not a JSON object.");
                var row = new Row { prompt = obj[promptField]?.ToString() ?? "", solution = obj[solutionField]?.ToString() ?? "" };
                var s = engine.Predict(row);
                obj["step_rewards"] = new JsonArray(s.StepRewards.Select(r => (JsonNode)r).ToArray());
                obj["first_error_step"] = s.FirstErrorStep;
                writer.WriteLine(obj.ToJsonString(s_json));
                progress.Report(lineNo, lines.Count);
            }
            return lineNo;
        });
        AnsiConsole.MarkupLineInterpolated($"Scored {lines.Count} rows into [green]{output.FullName}[/].");
        return 0;
    }
}
