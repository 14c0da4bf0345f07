using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Pipeline;
using Spectre.Console;
using Microsoft.ML.StepDpo.Sampling;

namespace StepDpo.Samples;

/// <summary>Builds step-preference pairs (Math-Step-DPO-10K JSONL) from the policy's own mistakes.</summary>
internal sealed class BuildPairsCommand : ISampleCommand
{
    public Command Build()
    {
        var input = new Option<FileInfo>("--input") { Description = "Problems JSONL.", Required = true };
        var problem = new Option<string>("--problem-field") { Description = "Field with the problem.", Required = true };
        var answer = new Option<string>("--answer-field") { Description = "Field with the reference answer (a GSM8K \"… #### 72\" answer is reduced to 72).", Required = true };
        var samples = new Option<int>("--samples") { Description = "K: solutions sampled per problem.", DefaultValueFactory = _ => 8 };
        var rollouts = new Option<int>("--rollouts") { Description = "N: rollouts per examined prefix.", DefaultValueFactory = _ => 8 };
        var rectify = new Option<int>("--rectifications") { Description = "M: continuations sampled from the prefix before the wrong step.", DefaultValueFactory = _ => 8 };
        var concurrency = new Option<int>("--concurrency") { Description = "Problems processed at once (their requests share the local model's batches; the pairs do not depend on it).", DefaultValueFactory = _ => 32 };
        var answerPairs = new Option<FileInfo?>("--answer-pairs") { Description = "Also write answer-level pairs (correct vs wrong whole solution) here." };
        var dataset = new Option<string>("--dataset") { Description = "The dataset field of the rows.", DefaultValueFactory = _ => "self" };
        var seed = new Option<long>("--seed") { Description = "Sampling seed.", DefaultValueFactory = _ => 0L };
        var failBeyondContext = new Option<bool>("--fail-beyond-context") { Description = "Stop at a problem too long for the model's context instead of skipping and counting it." };
        var output = new Option<FileInfo>("--output") { Description = "Output pairs JSONL (appended; a killed run resumes from <output>.progress.jsonl).", Required = true };
        var backend = new BackendOptions();
        var cmd = new Command("build-pairs", "Sample, locate the first error, rectify: write Step-DPO pairs from the policy's own mistakes.")
            { input, problem, answer, samples, rollouts, rectify, concurrency, answerPairs, dataset, seed, failBeyondContext, output };
        backend.AddTo(cmd);
        cmd.SetAction((p, ct) => Run(p.GetValue(input)!, p.GetValue(problem)!, p.GetValue(answer)!, p.GetValue(samples), p.GetValue(rollouts),
            p.GetValue(rectify), p.GetValue(concurrency), p.GetValue(answerPairs), p.GetValue(dataset)!, p.GetValue(seed), p.GetValue(failBeyondContext), backend.Read(p),
            p.GetValue(output)!, ct));
        return cmd;
    }

    private sealed class ProblemRow
    {
        public string Problem { get; set; } = "";
        public string Answer { get; set; } = "";
    }

    private static async Task<int> Run(FileInfo input, string problemField, string answerField, int samples, int rollouts, int rectifications,
        int concurrency, FileInfo? answerPairs, string dataset, long seed, bool failBeyondContext, Backend backend, FileInfo output, CancellationToken ct)
    {
        if (backend.Model is null && (backend.Endpoint is null || backend.EndpointModel is null))
            throw new UsageException("Give --model DIR, or --endpoint URL and --endpoint-model NAME.");
        JsonlInput.RequireFile(input, "--input");
        JsonlInput.RequireDistinct(input, output);
        JsonlInput.RequireDistinct(input, answerPairs, "--answer-pairs");
        if (answerPairs is not null && string.Equals(answerPairs.FullName, output.FullName, StringComparison.Ordinal))
            throw new UsageException($"{output.FullName}: --answer-pairs is the --output file; choose another path.");
        JsonlInput.CheckFields(input, ("--problem-field", problemField), ("--answer-field", answerField));
        var ml = new MLContext(seed: 0);
        var raw = ml.Data.LoadFromJsonl(input.FullName, problemField, answerField);
        var problems = raw.GetColumn<string>(problemField).Zip(raw.GetColumn<string>(answerField))
            .Select(x => new ProblemRow { Problem = x.First, Answer = AnswerEquivalence.ReduceReference(x.Second) }).ToList();

        using var resources = new Resources();
        var options = new StepPreferenceOptions
        {
            Policy = resources.Policy(backend),
            SamplesPerProblem = samples,
            RolloutsPerPrefix = rollouts,
            RectificationSamples = rectifications,
            MaxConcurrency = concurrency,
            Sampling = new SamplingSettings { MaxNewTokens = backend.MaxNewTokens, Seed = seed },
            Seed = seed,
            OutputPath = output.FullName,
            AnswerPairsPath = answerPairs?.FullName,
            Dataset = dataset,
            FailBeyondContext = failBeyondContext,
        };

        var report = await ConsoleProgress.RunAsync("problems", line => ml.StepDpo().BuildStepPreferencesAsync(ml.Data.LoadFromEnumerable(problems), options,
            new InlineProgress<StepPreferenceReport>(r => line.Report(r.Problems, problems.Count, $"problems ({r.Pairs} pairs)")), ct));

        var table = new Table().AddColumns("stage", "count");
        foreach (var (stage, count) in new[]
        {
            ("problems", (long)report.Problems), ("resumed", report.Resumed), ("sampled", report.Sampled), ("wrong", report.Wrong),
            ("located", report.Located), ("rectified", report.Rectified), ("pairs", report.Pairs), ("answer pairs", report.AnswerPairs),
            ("beyond context", report.BeyondContext),
        })
            table.AddRow(stage, count.ToString());
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"pairs → [green]{Markup.Escape(output.FullName)}[/]");
        if (report.BeyondContext > 0)
            Console.Error.WriteLine($"warning: {report.BeyondContext} of {report.Problems} problems do not fit the model's context and were skipped " +
                                    "(no rows; --fail-beyond-context stops at the first instead).");
        return 0;
    }
}
