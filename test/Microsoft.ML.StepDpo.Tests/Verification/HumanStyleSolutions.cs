using System.Globalization;

namespace Microsoft.ML.StepDpo.Tests.Verification;

/// <summary>One line of a generated solution, and the same line with a wrong stated result (null: no calculation).</summary>
internal sealed record SolutionLine(string Text, string? Planted);

/// <summary>
/// Deterministic human- and LLM-style solutions without GSM8K annotations: units and words between numbers and
/// operators, "x"/"×"/"*", word operators, currency, percentages, thousands separators, en/em dashes, rounding,
/// Markdown, intermediate results reused, and lines with numbers but no calculation (dates, step labels, ranges,
/// phone numbers, fractions of things, conversions).
/// </summary>
internal static class HumanStyleSolutions
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static readonly (string One, string Many, string Sub)[] s_items =
    [
        ("pizza", "pizzas", "slices"), ("box", "boxes", "crayons"), ("bag", "bags", "apples"), ("shelf", "shelves", "books"),
        ("row", "rows", "chairs"), ("pack", "packs", "cards"), ("tray", "trays", "cookies"), ("crate", "crates", "bottles"),
    ];

    private static readonly string[] s_names = ["Mia", "John", "The baker", "Carla", "Ahmed", "Li", "The school", "Janet"];

    /// <summary><paramref name="count"/> solutions of 3–7 lines, each with at least two calculations.</summary>
    public static List<SolutionLine[]> Generate(int count, int seed)
    {
        var rng = new Random(seed);
        var solutions = new List<SolutionLine[]>(count);
        while (solutions.Count < count)
        {
            var lines = new List<SolutionLine>();
            if (rng.Next(4) == 0) lines.Add(new(rng.Next(2) == 0 ? "Let's think step by step." : "Let's solve this step by step:", null));
            int calculations = 2 + rng.Next(3);
            long previous = -1;
            for (int k = 0; k < calculations; k++)
            {
                if (rng.Next(3) == 0) lines.Add(new(Filler(rng, lines.Count + 1), null));
                var (line, result) = Calculation(rng, previous);
                lines.Add(line);
                previous = result;
            }
            lines.Add(new(rng.Next(2) == 0 ? $"The answer is {Math.Max(previous, 0)}." : $"#### {Math.Max(previous, 0)}", null));
            solutions.Add(lines.ToArray());
        }
        return solutions;
    }

    private static string N(long v, bool thousands) => thousands ? v.ToString("#,0", Inv) : v.ToString(Inv);

    // A wrong integer that no rounding explains.
    private static long WrongInt(Random rng, long r)
    {
        long[] deltas = [1, -1, 2, 10, -10, 5, 100];
        long w;
        do w = r + deltas[rng.Next(deltas.Length)];
        while (w == r || w < 0);
        return w;
    }

    private static SolutionLine Line(string template, string right, string wrong) =>
        new(template.Replace("{R}", right), template.Replace("{R}", wrong));

    /// <summary>A line with one calculation, and its integer result (−1 when not an integer) for the next line to reuse.</summary>
    private static (SolutionLine, long) Calculation(Random rng, long previous)
    {
        var item = s_items[rng.Next(s_items.Length)];
        string name = s_names[rng.Next(s_names.Length)];
        int a = 2 + rng.Next(48), b = 2 + rng.Next(23), c = 1 + rng.Next(30);
        if (previous > 0 && rng.Next(3) == 0)
        {
            // Reuse the previous result.
            long r2 = rng.Next(2) == 0 ? previous + c : previous * b;
            string op = r2 == previous + c ? (rng.Next(2) == 0 ? "+" : "plus") : (rng.Next(2) == 0 ? "x" : "×");
            string t = rng.Next(3) switch
            {
                0 => $"So in total there are {previous} {op} {(op is "+" or "plus" ? c : b)} = {{R}} {item.Sub}.",
                1 => $"That makes {previous} {item.Sub} {op} {(op is "+" or "plus" ? c : b)} = {{R}} {item.Sub}",
                _ => $"Then {previous} {op} {(op is "+" or "plus" ? c : b)} equals {{R}}.",
            };
            return (Line(t, r2.ToString(Inv), WrongInt(rng, r2).ToString(Inv)), r2);
        }

        long r;
        string text;
        bool th = rng.Next(2) == 0;
        switch (rng.Next(43))
        {
            case 0:
                r = (long)a * b;
                text = $"{name} orders {a} {item.Many} x {b} {item.Sub} per {item.One} = {{R}} {item.Sub}";
                break;
            case 1:
                r = (long)a * b;
                text = $"{a} hours/week x {b} weeks = {{R}} hours";
                break;
            case 2:
                r = a;
                text = $"${a * b} total / {b} packs of bacon = ${{R}}";
                break;
            case 3:
                r = a + b + c;
                text = $"{a} plus {b} plus {c} equals {{R}}";
                break;
            case 4:
                a += 100; b = 5 * (1 + rng.Next(10));
                r = a - b;
                text = $"{a}cm full length – {b}cm lace trim = {{R}}cm";
                break;
            case 5:
            {
                int cents = 25 * (1 + rng.Next(19));
                decimal price = cents / 100m + rng.Next(9);
                decimal total = price * a;
                string wrongTotal = (total + (rng.Next(2) == 0 ? 1 : 0.25m)).ToString("0.00", Inv);
                var t = $"{name} buys {a} {item.Many} × ${price.ToString("0.00", Inv)} = ${{R}}";
                return (Line(t, total.ToString("0.00", Inv), wrongTotal), -1);
            }
            case 6:
                r = (long)a * b;
                text = rng.Next(3) switch { 0 => $"{a} * {b} = {{R}}", 1 => $"{a}*{b}={{R}}", _ => $"We need {a} * {b} = {{R}} {item.Sub}." };
                break;
            case 7:
            {
                int p = new[] { 10, 20, 25, 50, 75, 40 }[rng.Next(6)];
                int whole = 20 * (1 + rng.Next(30));
                r = whole * p / 100;
                text = rng.Next(2) == 0 ? $"{p}% of {whole} = {{R}}" : $"{p}% of the {whole} students = {{R}} students";
                break;
            }
            case 8:
            {
                int p = new[] { 10, 20, 25, 50, 15 }[rng.Next(5)];
                int whole = 20 * (1 + rng.Next(30));
                r = whole * p / 100;
                text = $"The discount is ${whole} x {p}% = ${{R}}.";
                break;
            }
            case 9:
            {
                long x = 1000 + rng.Next(90000), y = 100 + rng.Next(9000);
                r = x + y;
                text = $"The house and repairs cost ${N(x, th)} + ${N(y, th)} = ${{R}}";
                return (Line(text, N(r, th), N(WrongInt(rng, r), th)), r);
            }
            case 10:
            case 11:
            {
                int num = a * 3 + 1 + rng.Next(2), den = 3 + 3 * rng.Next(3); // not a short decimal
                if (num % den == 0) num++;
                double q = (double)num / den;
                int decimals = rng.Next(2) + 1;
                string right = Math.Round(q, decimals, MidpointRounding.AwayFromZero).ToString("F" + decimals, Inv);
                string wrong = (Math.Round(q, decimals, MidpointRounding.AwayFromZero) + 7 * Math.Pow(10, -decimals)).ToString("F" + decimals, Inv);
                string t = rng.Next(3) switch
                {
                    0 => $"Each gets {num} / {den} = about {{R}} liters.",
                    1 => $"{num}/{den} ≈ {{R}}",
                    _ => $"So {num} ÷ {den} = {{R}} hours per day (rounded).",
                };
                return (Line(t, right, wrong), -1);
            }
            case 12:
                r = a + b; a = (int)r; r = a - b;
                text = $"{a} minus {b} equals {{R}}";
                break;
            case 13:
                r = (long)a * b;
                text = $"{a} times {b} is {{R}}.";
                break;
            case 14:
            {
                int cents = 5 * (1 + rng.Next(19));
                decimal price = cents / 100m + 1 + rng.Next(9);
                decimal total = price * b;
                var t = $"Total cost = {b} × ${price.ToString("0.00", Inv)} = ${{R}}";
                return (Line(t, total.ToString("0.00", Inv), (total + 2).ToString("0.00", Inv)), -1);
            }
            case 15:
                r = (long)a * b;
                text = $"- {char.ToUpperInvariant(item.Sub[0])}{item.Sub[1..]}: {a} × {b} = {{R}}";
                break;
            case 16:
                r = a + b;
                text = $"**Step {1 + rng.Next(5)}:** {a} + {b} = {{R}}";
                break;
            case 17:
                r = a; a *= b;
                text = $"{a} divided by {b} equals {{R}}";
                break;
            case 18:
                r = (long)(a + b) * c;
                text = $"({a} + {b}) × {c} = {{R}}";
                break;
            case 19:
                r = a + b + c;
                text = $"The total is {a} + {b} + {c} = {{R}} dollars.";
                break;
            case 20:
            {
                long x = 1000 + rng.Next(9000), y = 100 + rng.Next(900);
                r = x - y;
                text = $"It costs ${N(x, true)} – ${N(y, true)} = ${{R}}.";
                return (Line(text, N(r, true), N(WrongInt(rng, r), true)), r);
            }
            case 21:
                r = a - (b % a);
                text = $"That's {a} — {b % a} = {{R}} left";
                break;
            case 22:
                r = (long)a * b;
                text = $"{a} {item.Many} x {b} {item.Sub} each = {{R}} {item.Sub}";
                break;
            case 23:
                r = (long)a * b;
                text = $"{name} earns ${a} an hour x {b} hours = ${{R}}";
                break;
            case 24:
                r = (long)a * 60;
                text = $"{a} hours * 60 minutes/hour = {{R}} minutes";
                break;
            case 26:
                r = a + b;
                text = $"She has {a} + {b} = {{R}} apples now.";
                break;
            case 27:
                r = a; a *= b;
                text = $"The cost per day is ${a} / {b} days = ${{R}} per day.";
                break;
            case 28:
                r = (long)a * b;
                text = $"He needs {a} x {b} = {{R}} more.";
                break;
            case 29:
                r = (long)a + b;
                text = $"{a} minutes + {b} minutes = {{R}} minutes";
                break;
            case 30:
                r = (long)a * 4 + (long)b * 2;
                text = $"({a} x 4) + ({b} x 2) = {{R}} wheels";
                break;
            case 31:
                r = a; a *= b;
                text = $"${a} / {b} = ${{R}} per person";
                break;
            case 32:
                r = (long)a * b - c;
                text = $"{a} × {b} − {c} = {{R}}";
                break;
            case 33:
                r = (long)(a + b) * 2;
                text = $"Perimeter: 2 × ({a} + {b}) = {{R}} feet";
                break;
            case 34:
                r = (long)a * b;
                text = $"{name} reads {a} pages a day for {b} days: {a} × {b} = {{R}} pages.";
                break;
            case 35:
                r = (long)a * 3 + b;
                text = $"3 × {a} + {b} is {{R}} in total.";
                break;
            case 36:
            {
                int whole = 4 * (5 + rng.Next(40));
                r = whole * 3 / 4;
                text = $"3/4 of {whole} = {{R}} marbles";
                break;
            }
            case 38:
                r = (long)a * b;
                text = $"{a} × {b} gives {{R}} {item.Sub}.";
                break;
            case 39:
                r = (long)a * b;
                text = $"That is {a} x {b}, which is {{R}}.";
                break;
            case 40:
                r = (long)a + b;
                text = $"{a} + {b} makes {{R}} altogether.";
                break;
            case 41:
                // A style the verifier does not read (no operator sign, no "="): counted, not hidden.
                r = (long)a * b;
                text = $"Multiply {a} by {b} to get {{R}}.";
                break;
            default:
                r = (long)a * b + c;
                text = $"{a} x {b} + {c} = {{R}}";
                break;
        }
        return (Line(text, r.ToString(Inv), WrongInt(rng, r).ToString(Inv)), r);
    }

    /// <summary>Text with numbers and no calculation to check, or a correct statement the verifier must not flag.</summary>
    private static string Filler(Random rng, int step)
    {
        int a = 2 + rng.Next(40);
        return rng.Next(28) switch
        {
            0 => $"Step {step}: Find the total.",
            1 => $"On March {1 + rng.Next(28)}, {2000 + rng.Next(25)} she had {a} stickers.",
            2 => $"Shipping takes {1 + rng.Next(3)}-{5 + rng.Next(3)} days.",
            3 => $"Call 555-{1000 + rng.Next(9000)} for details.",
            4 => "1/2 of the cake is left over.",
            5 => $"She is {a} years old and her brother is 3 years older.",
            6 => "The ratio of boys to girls is 3:2.",
            7 => "He works from 9-5 every day.",
            8 => $"Room {a}-B is on floor 3.",
            9 => $"Step {step} - {a} x 4 = {a * 4} cookies in all.",
            10 => "2 hours = 120 minutes",
            11 => "3 packs of 5 = 15 pencils",
            12 => "half of 10 + 2 = 7 apples",
            13 => $"The train leaves at 3:30 and arrives at {4 + rng.Next(5)}:15.",
            14 => $"Let x be the number of apples, so 2x = {2 * a}.",
            15 => $"The 3rd day he reads 3 * {a} = {3 * a} pages.",
            16 => "He had 12 (2 + 4 = 6 of them red).",
            17 => $"In {2010 + rng.Next(10)} - {2020 + rng.Next(5)} the club grew.",
            18 => $"{a} apples and 3 pears = {a + 3} fruits",
            19 => $"Page {a} - {a + 5} = 5 pages were torn.",
            20 => "From 2 - 5 pm = 3 hours of work.",
            21 => "She reads 20 pages per day for 7 days = 140 pages.",
            22 => $"The score was {a}-{a + 2} at half time.",
            23 => $"His phone number is 415-555-{1000 + rng.Next(9000)}.",
            24 => "The price went from $20 to $25, a 25% increase.",
            25 => "Ages 5-12 = 3 groups.",
            26 => "He is 12, which is 3 more than 9.",
            _ => $"1 dozen = 12 eggs, and {a} is {(a % 2 == 0 ? "even" : "odd")}.",
        };
    }
}
