using System.Text.RegularExpressions;
using Microsoft.ML.StepDpo.Pipeline;
using Microsoft.ML.StepDpo.Tasks;

using Microsoft.ML.StepDpo.Tests.Sampling;

namespace Microsoft.ML.StepDpo.Tests.Pipeline;

/// <summary>
/// A policy for built-in arithmetic problems whose continuations are a pure function of (problem, prefix, seed + index):
/// from a prefix whose steps are all the true ones, a continuation is either right, or has an arithmetic slip (result
/// +1) at one of the next steps, or applies a wrong operation at one of the next steps with correct arithmetic (only rollouts catch
/// that); the wrong kinds end with a wrong answer. From a prefix holding a wrong step, every continuation ends wrong.
/// </summary>
internal static class ScriptedArithmeticPolicy
{
    private static readonly Regex s_step = new(@"^(\d+)([+\-*])(\d+)=(\d+)\.$");
    private static readonly Regex s_prefixStep = new(@"\nStep (\d+): ([^\n]*)");

    public static ScriptedCompletionSource Create(IReadOnlyList<ArithmeticProblem> problems)
    {
        var byQuestion = problems.ToDictionary(p => p.Question);
        return new ScriptedCompletionSource((request, index) => Continue(byQuestion[request.Problem], request.Prefix, request.Settings.Seed + index));
    }

    public static string Continue(ArithmeticProblem p, string prefix, long draw)
    {
        var given = s_prefixStep.Matches(prefix).Select(m => m.Groups[2].Value.Trim()).Where(s => s.Length > 0).ToList();
        int next = given.Count + 1; // the prefix ends with "Step {next}:"
        bool clean = given.Select((s, i) => i < p.Steps.Count && s == p.Steps[i]).All(x => x);
        var rest = p.Steps.Skip(next - 1).ToList();
        long mixed = Math.Abs(draw * 2654435761L);
        int mode = clean ? (int)(mixed % 4) : 9;
        int at = (int)(mixed / 4 % rest.Count); // where the error goes
        switch (mode)
        {
            case 0:
            case 1:
                return Render(next, rest, p.Answer);
            case 2:
                rest[at] = Slip(rest[at]);
                return Render(next, rest, p.Answer + 1);
            case 3:
                rest[at] = WrongOperation(rest[at]);
                return Render(next, rest, p.Answer + 2);
            default:
                return Render(next, rest, p.Answer + 3);
        }
    }

    public static string Slip(string step)
    {
        var m = s_step.Match(step);
        return $"{m.Groups[1].Value}{m.Groups[2].Value}{m.Groups[3].Value}={long.Parse(m.Groups[4].Value) + 1}.";
    }

    public static string WrongOperation(string step)
    {
        var m = s_step.Match(step);
        long a = long.Parse(m.Groups[1].Value), b = long.Parse(m.Groups[3].Value);
        return m.Groups[2].Value == "+" ? $"{a}*{b}={a * b}." : $"{a}+{b}={a + b}.";
    }

    private static string Render(int from, IReadOnlyList<string> steps, int answer)
    {
        var parts = steps.Select((s, i) => (i == 0 ? " " : $"\nStep {from + i}: ") + s);
        return string.Concat(parts) + $"\nThe answer is {answer}.";
    }
}
