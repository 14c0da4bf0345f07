using Microsoft.ML.Data;
using Microsoft.ML.StepDpo.Persistence;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.StepDpo.Verification;

/// <summary>The configuration a saved first-error locator carries (only verifiers that need no live model or client).</summary>
internal sealed class LocatorSettings
{
    public List<string> Verifiers { get; set; } = new();
    public bool ConfirmsCorrectCalculations { get; set; }
    public bool NeutralIsError { get; set; }
    public bool HasReferenceAnswer { get; set; }
    public bool HasReferenceSolution { get; set; }

    public FirstErrorLocator CreateLocator() => new(
        Verifiers.Select(v => v switch
        {
            "arithmetic" => (IStepVerifier)new ArithmeticStepVerifier(ConfirmsCorrectCalculations),
            _ => throw new InvalidOperationException($"The saved first-error locator names an unknown verifier '{v}'."),
        }).ToArray(),
        NeutralIsError);
}

/// <summary>Row types and the stateless factory of the locator's custom mapping (see <see cref="PersistedMapping"/>).</summary>
[CustomMappingFactoryAttribute(ContractName)]
internal sealed class FirstErrorLocatorMapping : CustomMappingFactory<FirstErrorLocatorMapping.Input, FirstErrorLocatorMapping.Output>
{
    public const string ContractName = "Microsoft.ML.StepDpo.FirstErrorLocator.v1";
    public const string ConfigColumn = "__FirstErrorLocator_Config";
    public const string ProblemColumn = "__FirstErrorLocator_Problem";
    public const string StepsColumn = "__FirstErrorLocator_Steps";
    public const string AnswerColumn = "__FirstErrorLocator_Answer";
    public const string SolutionColumn = "__FirstErrorLocator_Solution";
    public const string FirstErrorColumn = "__FirstErrorLocator_FirstError";
    public const string VerdictsColumn = "__FirstErrorLocator_Verdicts";
    public const string EvidenceColumn = "__FirstErrorLocator_Evidence";

    public static readonly string[] InternalColumns =
        { ConfigColumn, ProblemColumn, StepsColumn, AnswerColumn, SolutionColumn, FirstErrorColumn, VerdictsColumn, EvidenceColumn };

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, FirstErrorLocator> s_locators = new();

    public sealed class Input
    {
        [ColumnName(ConfigColumn)] public string Config = "";
        [ColumnName(ProblemColumn)] public string Problem = "";
        [ColumnName(StepsColumn)] public string[] Steps = Array.Empty<string>();
        [ColumnName(AnswerColumn)] public string Answer = "";
        [ColumnName(SolutionColumn)] public string Solution = "";
    }

    public sealed class Output
    {
        [ColumnName(FirstErrorColumn)] public int FirstErrorStep;
        [ColumnName(VerdictsColumn)] public string[] Verdicts = Array.Empty<string>();
        [ColumnName(EvidenceColumn)] public string Evidence = "";
    }

    public override Action<Input, Output> GetMapping() => Map;

    /// <summary>The persisted mapping: the verifiers come from the row's configuration.</summary>
    public static void Map(Input input, Output output)
    {
        var settings = PersistedMapping.ReadConfig<LocatorSettings>(input.Config);
        var locator = s_locators.GetOrAdd(input.Config, _ => settings.CreateLocator());
        MapWith(locator, settings.HasReferenceAnswer, settings.HasReferenceSolution, input, output);
    }

    /// <summary>One row through <paramref name="locator"/> (the verifiers are asynchronous; a mapping is not).</summary>
    public static void MapWith(FirstErrorLocator locator, bool hasAnswer, bool hasSolution, Input input, Output output)
    {
        var steps = input.Steps ?? Array.Empty<string>();
        var located = locator.LocateAsync(new StepVerificationInput(
            input.Problem ?? string.Empty, steps,
            hasAnswer && !string.IsNullOrWhiteSpace(input.Answer) ? input.Answer : null,
            hasSolution && !string.IsNullOrWhiteSpace(input.Solution) ? input.Solution : null)).GetAwaiter().GetResult();
        output.FirstErrorStep = located.FirstErrorStep;
        output.Verdicts = located.Steps.Select(s => VerdictText(s.Verdict)).ToArray();
        output.Evidence = located.Evidence;
    }

    public static string VerdictText(StepVerdict verdict) => verdict switch
    {
        StepVerdict.Correct => "correct",
        StepVerdict.Neutral => "neutral",
        StepVerdict.Incorrect => "incorrect",
        _ => "unknown",
    };
}
