using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Text;

namespace StepDpo.Samples;

/// <summary>
/// Loads a saved ML.NET model (e.g. a StepSegmenter) and applies it to a JSONL file: a fresh process
/// proves that a model saved with mlContext.Model.Save loads with the public API and gives the same output.
/// </summary>
internal sealed class ApplyModelCommand : ISampleCommand
{
    public Command Build()
    {
        var model = new Option<FileInfo>("--model") { Description = "Model zip saved with mlContext.Model.Save.", Required = true };
        var input = new Option<FileInfo>("--input") { Description = "Input JSONL file.", Required = true };
        var fields = new Option<string[]>("--fields") { Description = "Input fields read as text columns.", Required = true, AllowMultipleArgumentsPerToken = true };
        var output = new Option<FileInfo>("--output") { Description = "Output JSONL file: each input row (every field, as it was) plus the columns the model adds.", Required = true };
        var cmd = new Command("apply-model", "Apply a saved ML.NET model (Step-DPO transforms) to a JSONL file.") { model, input, fields, output };
        cmd.SetAction(parse => Run(parse.GetValue(model)!, parse.GetValue(input)!, parse.GetValue(fields)!, parse.GetValue(output)!));
        return cmd;
    }

    private static int Run(FileInfo model, FileInfo input, string[] fields, FileInfo output)
    {
        JsonlInput.RequireFile(model, "--model");
        JsonlInput.RequireFile(input, "--input");
        JsonlInput.RequireDistinct(input, output);
        JsonlInput.RequireDistinct(model, output);
        JsonlInput.CheckFields(input, fields.Select(f => ("--fields", (string?)f)).ToArray());
        var mlContext = new MLContext(seed: 0);
        // A loading process registers the assembly that holds the custom-mapping factories.
        mlContext.ComponentCatalog.RegisterAssembly(typeof(StepSegmenter).Assembly);
        var transformer = mlContext.Model.Load(model.FullName, out _);
        var data = mlContext.Data.LoadFromJsonl(input.FullName, fields.Select(f => new JsonlField(f)).ToArray(), new JsonlReadOptions { RawJsonColumnName = EvalCommand.RawJson });
        var transformed = transformer.Transform(data);
        // Each input row as it was (every field, its JSON type kept), then the columns the model adds or replaces.
        var added = transformed.Schema
            .Where(c => !c.IsHidden && c.Name != EvalCommand.RawJson && !(data.Schema.GetColumnOrNull(c.Name) is { } same && same.Index == c.Index))
            .Select(c => c.Name).ToArray();
        long rows = mlContext.Data.SaveAsJsonlPassThrough(transformed, output.FullName, EvalCommand.RawJson, added);
        Console.WriteLine($"wrote {rows} rows to {output.FullName}");
        return 0;
    }
}
