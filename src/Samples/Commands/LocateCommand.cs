using System.ClientModel;
using System.CommandLine;
using Microsoft.Extensions.AI;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.StepDpo;
using Microsoft.ML.StepDpo.Answers;
using Microsoft.ML.StepDpo.Data;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Text;
using Microsoft.ML.StepDpo.Verification;
using OpenAI;
using Spectre.Console;
using Microsoft.ML.StepDpo.Sampling;

namespace StepDpo.Samples;

/// <summary>Finds the first wrong step of each solution in a JSONL file (LocateFirstError).</summary>
internal sealed class LocateCommand : ISampleCommand
{
    public Command Build()
    {
        var input = new Option<FileInfo>("--input") { Description = "Input JSONL file.", Required = true };
        var problem = new Option<string>("--problem-field") { Description = "Field with the problem.", Required = true };
        var solution = new Option<string>("--solution-field") { Description = "Field with the step-by-step solution to check.", Required = true };
        var answer = new Option<string?>("--answer-field") { Description = "Field with the reference answer (a GSM8K \"… #### 72\" answer is reduced to 72)." };
        var reference = new Option<string?>("--reference-solution-field") { Description = "Field with a correct reference solution (for the judge)." };
        var segment = new Option<string>("--segment") { Description = "auto | markers | paragraphs | lines.", DefaultValueFactory = _ => "auto" };
        segment.AcceptOnlyFromAmong("auto", "markers", "paragraphs", "lines");
        var verifiers = new Option<string>("--verifiers") { Description = "Comma-separated, in order: arithmetic, rollout, judge.", DefaultValueFactory = _ => "arithmetic" };
        var output = new Option<FileInfo>("--output") { Description = "Output JSONL: each input row plus first_error_step (1-based, -1 for none), verdicts and evidence.", Required = true };
        var backend = new BackendOptions();
        var rollouts = new Option<int>("--rollouts") { Description = "Rollouts per examined prefix (rollout verifier).", DefaultValueFactory = _ => 8 };
        var cmd = new Command("locate", "Find the first wrong step of each solution with arithmetic, rollout and judge verifiers.")
            { input, problem, solution, answer, reference, segment, verifiers, rollouts, output };
        backend.AddTo(cmd);
        cmd.SetAction(p => Run(p.GetValue(input)!, p.GetValue(problem)!, p.GetValue(solution)!, p.GetValue(answer), p.GetValue(reference),
            p.GetValue(segment)!, p.GetValue(verifiers)!, p.GetValue(rollouts), backend.Read(p), p.GetValue(output)!));
        return cmd;
    }

    private sealed class AnswerIn { public string Raw = ""; }
    private sealed class AnswerOut { public string Reference = ""; }
    private sealed class TickIn { [ColumnName("first_error_step")] public int Step = 0; }
    private sealed class TickOut { public bool Ticked; }

    private static int Run(FileInfo input, string problemField, string solutionField, string? answerField, string? referenceField,
        string segment, string verifierList, int rollouts, Backend backend, FileInfo output)
    {
        JsonlInput.RequireFile(input, "--input");
        JsonlInput.RequireDistinct(input, output);
        var names = verifierList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => v.ToLowerInvariant()).ToList();
        if (names.Count == 0 || names.Any(n => n is not ("arithmetic" or "rollout" or "judge")))
            throw new UsageException($"--verifiers '{verifierList}': give a comma-separated list of arithmetic, rollout and judge.");
        if (names.Contains("rollout") && answerField is null)
            throw new UsageException("The rollout verifier needs --answer-field (the reference answers); add it or drop rollout from --verifiers.");

        long total = JsonlInput.CheckFields(input, ("--problem-field", problemField), ("--solution-field", solutionField),
            ("--answer-field", answerField), ("--reference-solution-field", referenceField));

        using var resources = new Resources();
        var list = new List<IStepVerifier>();
        foreach (var name in names)
        {
            list.Add(name switch
            {
                "arithmetic" => new ArithmeticStepVerifier(),
                "rollout" => new RolloutStepVerifier(resources.Policy(backend), rollouts, new SamplingSettings { MaxNewTokens = backend.MaxNewTokens }),
                _ => new JudgeStepVerifier(resources.ChatClient(backend), backend.EndpointModel),
            });
        }

        var ml = new MLContext(seed: 0);
        var fieldNames = new[] { problemField, solutionField, answerField, referenceField }.OfType<string>().Distinct().ToArray();
        var data = ml.Data.LoadFromJsonl(input.FullName, fieldNames.Select(f => new JsonlField(f)).ToArray(), new JsonlReadOptions { RawJsonColumnName = EvalCommand.RawJson });

        long done = 0;
        IEstimator<ITransformer> pipeline = ml.Transforms.SegmentSteps("__steps", solutionField, segment switch
        {
            "markers" => SegmentationMode.StepMarkers,
            "paragraphs" => SegmentationMode.Paragraphs,
            "lines" => SegmentationMode.Lines,
            _ => SegmentationMode.Auto,
        });
        if (answerField is not null)
        {
            pipeline = pipeline.Append(ml.Transforms.CopyColumns("Raw", answerField))
                .Append(ml.Transforms.CustomMapping<AnswerIn, AnswerOut>((i, o) => o.Reference = AnswerEquivalence.ReduceReference(i.Raw), contractName: null));
        }
        pipeline = pipeline
            .Append(ml.Transforms.LocateFirstError(new FirstErrorLocatorEstimator.Options
            {
                ProblemColumnName = problemField,
                StepsColumnName = "__steps",
                ReferenceAnswerColumnName = answerField is null ? null : "Reference",
                ReferenceSolutionColumnName = referenceField,
                FirstErrorStepColumnName = "first_error_step",
                VerdictsColumnName = "verdicts",
                EvidenceColumnName = "evidence",
                Verifiers = list,
            }))
            .Append(ml.Transforms.CustomMapping<TickIn, TickOut>((_, o) => { Interlocked.Increment(ref done); o.Ticked = true; }, contractName: null));
        var transformed = pipeline.Fit(data).Transform(data);

        long rows = ConsoleProgress.Run("locating first errors", line =>
        {
            var writer = Task.Run(() => ml.Data.SaveAsJsonlPassThrough(transformed, output.FullName, EvalCommand.RawJson, "first_error_step", "verdicts", "evidence"));
            while (!writer.Wait(200)) line.Report(Interlocked.Read(ref done), total);
            return writer.Result;
        });

        var firsts = ml.Data.LoadFromJsonl(output.FullName, "first_error_step").GetColumn<string>("first_error_step").ToList();
        int located = firsts.Count(f => f != "-1");
        AnsiConsole.MarkupLine($"{rows} rows, first error found in {located} → [green]{Markup.Escape(output.FullName)}[/]");
        return 0;
    }
}

/// <summary>Where completions and judgments come from: a local model folder or an OpenAI-protocol endpoint.</summary>
internal sealed record Backend(DirectoryInfo? Model, string? Endpoint, string? EndpointModel, string Template, int MaxNewTokens, int MaxBatchRows);

/// <summary>The backend options shared by locate and build-pairs.</summary>
internal sealed class BackendOptions
{
    private readonly Option<DirectoryInfo?> _model = new("--model") { Description = "Local model folder (config.json, safetensors, tokenizer.json) for sampling and rollouts." };
    private readonly Option<string?> _endpoint = new("--endpoint") { Description = "OpenAI-protocol endpoint (vLLM, TGI, Ollama, Azure OpenAI …), e.g. http://localhost:8000/v1. API key from OPENAI_API_KEY." };
    private readonly Option<string?> _endpointModel = new("--endpoint-model") { Description = "Model name at the endpoint." };
    private readonly Option<string> _template = new("--template") { Description = $"Prompt format of the local model: {string.Join(" | ", PromptTemplate.BuiltIn.Keys)}.", DefaultValueFactory = _ => "qwen2-boxed" };
    private readonly Option<int> _maxNew = new("--max-new-tokens") { Description = "Most new tokens per completion.", DefaultValueFactory = _ => 512 };
    private readonly Option<int> _batch = new("--batch-rows") { Description = "Most sequences per local generation batch.", DefaultValueFactory = _ => 32 };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { _model, _endpoint, _endpointModel, _template, _maxNew, _batch }) command.Options.Add(o);
    }

    public Backend Read(ParseResult p) => new(p.GetValue(_model), p.GetValue(_endpoint), p.GetValue(_endpointModel), p.GetValue(_template)!, p.GetValue(_maxNew), p.GetValue(_batch));
}

/// <summary>Creates (once) and disposes the model or client a command needs.</summary>
internal sealed class Resources : IDisposable
{
    private LocalModelCompletionSource? _local;
    private IChatClient? _chat;
    private ICompletionSource? _policy;

    public ICompletionSource Policy(Backend b)
    {
        if (_policy is not null) return _policy;
        if (b.Model is not null)
        {
            var template = PromptTemplate.FromName(b.Template);
            return _policy = _local = LocalModelCompletionSource.Load(b.Model.FullName, template, b.MaxBatchRows);
        }
        return _policy = new ChatCompletionSource(ChatClient(b), new ChatCompletionSourceOptions { ModelId = b.EndpointModel });
    }

    public IChatClient ChatClient(Backend b)
    {
        if (_chat is not null) return _chat;
        if (string.IsNullOrEmpty(b.Endpoint) || string.IsNullOrEmpty(b.EndpointModel))
            throw new ArgumentException("This needs --endpoint URL and --endpoint-model NAME (or --model DIR for local sampling).");
        string key = Environment.GetEnvironmentVariable("OPENAI_API_KEY") is { Length: > 0 } k ? k : "none";
        var client = new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(b.Endpoint) });
        return _chat = client.GetChatClient(b.EndpointModel).AsIChatClient();
    }

    public void Dispose()
    {
        _local?.Dispose();
        _chat?.Dispose();
    }
}
