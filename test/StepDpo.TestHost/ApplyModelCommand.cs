using Microsoft.ML;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Text;

namespace StepDpo.TestHost;

/// <summary>
/// <c>apply-model --model ZIP --input JSONL --fields F… --output JSONL</c>: loads a model saved with
/// mlContext.Model.Save and writes every output column of the input rows, so a test can compare a fresh process's
/// outputs with those of the process that trained and saved the model.
/// </summary>
internal static class ApplyModelCommand
{
    public static int Run(HostArguments args)
    {
        var mlContext = new MLContext(seed: 0);
        // A loading process registers the assembly that holds the custom-mapping factories.
        mlContext.ComponentCatalog.RegisterAssembly(typeof(StepSegmenter).Assembly);
        var transformer = mlContext.Model.Load(args.Required("--model"), out _);
        var data = mlContext.Data.LoadFromJsonl(args.Required("--input"), args.Many("--fields").ToArray());
        string output = Path.GetFullPath(args.Required("--output"));
        long rows = mlContext.Data.SaveAsJsonl(transformer.Transform(data), output);
        Console.WriteLine($"wrote {rows} rows to {output}");
        return 0;
    }
}
