using System.CommandLine;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.StepDpo.Data;
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
        long beyondContext = 0;
        JsonlInput.RequireFile(model, "--model");
        JsonlInput.RequireFile(input, "--input");
        JsonlInput.RequireDistinct(input, output);
        JsonlInput.RequireDistinct(model, output);
        long total = JsonlInput.CheckFields(input, ("--prompt-field", promptField), ("--solution-field", solutionField));
        var ml = new MLContext(0);
        ml.ComponentCatalog.RegisterAssembly(typeof(StepScoringTransformer).Assembly);
        var transformer = ml.Model.Load(model.FullName, out _);
        var engine = ml.Model.CreatePredictionEngine<Row, Scored>(transformer);
        // Written to a temporary file next to the output, which replaces it only once every row is scored.
        long rows = AtomicFile.Write(output.FullName, stream => ConsoleProgress.Run("scoring", progress =>
        {
            using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false), bufferSize: -1, leaveOpen: true);
            long lineNo = 0, done = 0;
            foreach (var line in File.ReadLines(input.FullName))
            {
                lineNo++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                JsonNode? node;
                try
                {
                    node = JsonNode.Parse(line);
                }
                catch (System.Text.Json.JsonException e)
                {
                    throw new InvalidDataException($"{input.FullName}:{lineNo}: invalid JSON ({e.Message}); fix or remove the line.");
                }
                var obj = node as JsonObject ?? throw new InvalidDataException($"{input.FullName}:{lineNo}: not a JSON object; fix or remove the line.");
                var row = new Row { prompt = Text(obj[promptField]), solution = Text(obj[solutionField]) };
                var s = engine.Predict(row);
                obj.Remove("step_rewards");
                obj.Remove("first_error_step");
                // A step beyond the model's context has no reward (NaN): written as null, which JSON can hold, and counted.
                beyondContext += s.StepRewards.Count(r => !float.IsFinite(r));
                obj["step_rewards"] = new JsonArray(s.StepRewards.Select(r => float.IsFinite(r) ? (JsonNode?)r : null).ToArray());
                obj["first_error_step"] = s.FirstErrorStep;
                writer.WriteLine(obj.ToJsonString(s_json));
                progress.Report(++done, total);
            }
            return done;
        }));
        AnsiConsole.MarkupLineInterpolated($"Scored {rows} rows into [green]{output.FullName}[/].");
        if (beyondContext > 0)
            Console.Error.WriteLine($"warning: {beyondContext} steps lie beyond the model's context and have no reward (null in step_rewards; " +
                                    "they do not count towards first_error_step).");
        return 0;
    }

    // A string field as its text, any other JSON value as its JSON, a missing field or null as "".
    private static string Text(JsonNode? node) => node is JsonValue v && v.TryGetValue(out string? text) ? text : node?.ToJsonString() ?? "";
}
