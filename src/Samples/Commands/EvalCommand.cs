using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Data;

namespace StepDpo.Samples;

/// <summary>Scores model responses in a JSONL file against reference answers (Qwen2.5-Math-style grading).</summary>
internal sealed class EvalCommand : ISampleCommand
{
    public Command Build()
    {
        var input = new Option<FileInfo>("--input") { Description = "Input JSONL file.", Required = true };
        var response = new Option<string>("--response-field") { Description = "Field with the model's solution.", Required = true };
        var reference = new Option<string>("--reference-field") { Description = "Field with the reference answer (or a solution with \\boxed{}).", Required = true };
        var group = new Option<string?>("--group-field") { Description = "Optional field to report accuracy per group." };
        var output = new Option<FileInfo?>("--output") { Description = "Optional JSONL output: each input row plus \"extracted\" and \"correct\"." };
        var cmd = new Command("eval", "Extract final answers and check them against references; prints accuracy.") { input, response, reference, group, output };
        cmd.SetAction(parse => Run(parse.GetValue(input)!, parse.GetValue(response)!, parse.GetValue(reference)!, parse.GetValue(group), parse.GetValue(output)));
        return cmd;
    }

    private static int Run(FileInfo input, string responseField, string referenceField, string? groupField, FileInfo? output)
    {
        JsonlInput.RequireFile(input, "--input");
        JsonlInput.RequireDistinct(input, output);
        JsonlInput.CheckFields(input, ("--response-field", responseField), ("--reference-field", referenceField), ("--group-field", groupField));
        var ml = new MLContext(seed: 0);
        var fields = new[] { responseField, referenceField, groupField }.OfType<string>().Distinct().Select(f => new JsonlField(f)).ToArray();
        var data = ml.Data.LoadFromJsonl(input.FullName, fields, new JsonlReadOptions { RawJsonColumnName = RawJson });
        var metrics = ml.StepDpo().Evaluate(data, responseField, referenceField, groupField);
        Console.WriteLine(metrics.ToString());
        Console.WriteLine($"95% CI: [{metrics.ConfidenceLower:F4}, {metrics.ConfidenceUpper:F4}]");
        foreach (var (key, m) in metrics.PerGroup)
            Console.WriteLine($"  {key}: {m}");
        if (output is not null)
        {
            var scored = ml.Transforms.ExtractAnswer("extracted", responseField).Fit(data).Transform(data);
            var withRef = ml.Transforms.CopyColumns("__ref", referenceField).Fit(scored).Transform(scored);
            var withVerdict = ml.Transforms.CustomMapping<Verdict.In, Verdict.Out>(Verdict.Map, contractName: null).Fit(withRef).Transform(withRef);
            long rows = ml.Data.SaveAsJsonlPassThrough(withVerdict, output.FullName, RawJson, "extracted", "correct");
            Console.WriteLine($"wrote {rows} rows to {output.FullName}");
        }
        return 0;
    }

    /// <summary>The column holding each input row's JSON, written back with its fields' types kept.</summary>
    internal const string RawJson = "__row_json";

    private static class Verdict
    {
        public sealed class In
        {
            public string extracted = "";
            public string __ref = "";
        }

        public sealed class Out
        {
            public bool correct;
        }

        public static void Map(In i, Out o) => o.correct = AnswerEquivalence.AreEquivalent(i.extracted, AnswerEquivalence.NormalizeReference(i.__ref));
    }
}
