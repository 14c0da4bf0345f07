using System.Globalization;
using System.Text;
using static Microsoft.ML.StepDpo.Tasks.ArithmeticTemplates;
using Microsoft.ML.StepDpo.Data;

namespace Microsoft.ML.StepDpo.Tasks;

/// <summary>
/// Draws one problem as a chain of events on a running quantity. Each event is one or two binary
/// operations; the chain stops when the drawn number of steps is reached.
/// </summary>
internal static class ArithmeticProblemGenerator
{
    private enum EventKind { Gain, Lose, GainGroups, LoseGroups, Scale }

    /// <summary>A drawn problem before it is assigned to a split.</summary>
    /// <param name="Identity">The computation alone (start value and event parameters), independent of names, objects and wording.</param>
    /// <param name="Problem">The problem as the user sees it.</param>
    internal sealed record Draft(string Identity, ArithmeticProblem Problem);

    /// <summary>Returns null when the drawn chain cannot be completed within the options' bounds (the caller redraws).</summary>
    public static Draft? TryDraw(Random rng, ArithmeticTaskOptions o)
    {
        string name = Names[rng.Next(Names.Length)];
        string obj = Objects[rng.Next(Objects.Length)];
        int targetSteps = rng.Next(o.MinSteps, o.MaxSteps + 1);
        int x = rng.Next(2, o.MaxStartValue + 1);

        var question = new StringBuilder(Fill(Start, name, obj, x));
        var identity = new StringBuilder(x.ToString(CultureInfo.InvariantCulture));
        var steps = new List<string>(targetSteps);
        var kinds = new List<EventKind>(5);

        while (steps.Count < targetSteps)
        {
            int remaining = targetSteps - steps.Count;
            kinds.Clear();
            bool add = o.Operations.HasFlag(ArithmeticOperations.Add);
            bool sub = o.Operations.HasFlag(ArithmeticOperations.Subtract);
            bool mul = o.Operations.HasFlag(ArithmeticOperations.Multiply);
            if (add && x + 1 <= o.MaxValue)
                kinds.Add(EventKind.Gain);
            if (sub && x >= 2)
                kinds.Add(EventKind.Lose);
            if (mul && remaining >= 2 && add && x + 4 <= o.MaxValue)
                kinds.Add(EventKind.GainGroups);
            if (mul && remaining >= 2 && sub && x >= 5)
                kinds.Add(EventKind.LoseGroups);
            if (mul && x * 2 <= o.MaxValue)
                kinds.Add(EventKind.Scale);
            if (kinds.Count == 0)
                return null;

            string sentence;
            switch (kinds[rng.Next(kinds.Count)])
            {
                case EventKind.Gain:
                {
                    int b = rng.Next(1, Math.Min(o.MaxAddend, o.MaxValue - x) + 1);
                    sentence = Fill(Gain[rng.Next(Gain.Length)], name, obj, b);
                    steps.Add(Step(x, '+', b, x + b));
                    identity.Append(";+").Append(b);
                    x += b;
                    break;
                }
                case EventKind.Lose:
                {
                    // Keep at least one left so the chain stays meaningful.
                    int b = rng.Next(1, Math.Min(o.MaxAddend, x - 1) + 1);
                    sentence = Fill(Lose[rng.Next(Lose.Length)], name, obj, b);
                    steps.Add(Step(x, '-', b, x - b));
                    identity.Append(";-").Append(b);
                    x -= b;
                    break;
                }
                case EventKind.GainGroups:
                {
                    int room = o.MaxValue - x;
                    int n = rng.Next(2, Math.Min(o.MaxGroupCount, room / 2) + 1);
                    int m = rng.Next(2, Math.Min(o.MaxGroupSize, room / n) + 1);
                    sentence = Fill(GainGroups[rng.Next(GainGroups.Length)], name, obj, n, m);
                    steps.Add(Step(n, '*', m, n * m));
                    steps.Add(Step(x, '+', n * m, x + n * m));
                    identity.Append(";+").Append(n).Append('x').Append(m);
                    x += n * m;
                    break;
                }
                case EventKind.LoseGroups:
                {
                    int room = x - 1;
                    int n = rng.Next(2, Math.Min(o.MaxGroupCount, room / 2) + 1);
                    int m = rng.Next(2, Math.Min(o.MaxGroupSize, room / n) + 1);
                    sentence = Fill(LoseGroups[rng.Next(LoseGroups.Length)], name, obj, n, m);
                    steps.Add(Step(n, '*', m, n * m));
                    steps.Add(Step(x, '-', n * m, x - n * m));
                    identity.Append(";-").Append(n).Append('x').Append(m);
                    x -= n * m;
                    break;
                }
                default:
                {
                    int k = rng.Next(2, Math.Min(o.MaxScaleFactor, o.MaxValue / x) + 1);
                    sentence = Fill(Scale[rng.Next(Scale.Length)], name, obj, k);
                    steps.Add(Step(x, '*', k, x * k));
                    identity.Append(";*").Append(k);
                    x *= k;
                    break;
                }
            }

            question.Append(' ').Append(sentence);
        }

        question.Append(' ').Append(Fill(Question, name, obj));
        string q = question.ToString();
        var problem = new ArithmeticProblem(
            "arith-" + StableHash.Fnv1a64(q).ToString("x16", CultureInfo.InvariantCulture),
            q,
            ArithmeticTask.FormatSolution(steps, x),
            steps,
            x);
        return new Draft(identity.ToString(), problem);
    }

    private static string Step(int a, char op, int b, int c) =>
        string.Create(CultureInfo.InvariantCulture, $"{a}{op}{b}={c}.");
}
