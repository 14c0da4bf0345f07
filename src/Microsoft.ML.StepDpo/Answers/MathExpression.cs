namespace Microsoft.ML.StepDpo.Answers;

/// <summary>
/// A small LaTeX/plain math expression parser and numeric evaluator: the CAS-free stand-in for math_equal's
/// sympy step. Numbers, variables (letters, Greek commands, subscripts), + − × ÷ · / ^, implicit multiplication
/// (as sympy's LaTeX parser does it: <c>3\frac{1}{2}</c> is 3·½), <c>\frac</c>, <c>\sqrt[n]{}</c>, <c>\pi</c>,
/// <c>\infty</c>, |x|, factorial, <c>\binom</c>, and the common functions. Parsing is bounded (length and depth);
/// anything else fails to parse (null), never throws.
/// </summary>
internal sealed class MathExpression
{
    private abstract class Node { }
    private sealed class Num(double v) : Node { public readonly double V = v; }
    private sealed class Var(string name) : Node { public readonly string Name = name; }
    private sealed class Bin(char op, Node a, Node b) : Node { public readonly char Op = op; public readonly Node A = a, B = b; }
    private sealed class Neg(Node a) : Node { public readonly Node A = a; }
    private sealed class Fn(string name, Node a, Node? b = null) : Node { public readonly string Name = name; public readonly Node A = a; public readonly Node? B = b; }

    public const int MaxLength = 600;
    private const int MaxDepth = 60;

    private readonly Node _root;

    /// <summary>Free variables, sorted.</summary>
    public IReadOnlyList<string> Variables { get; }

    private MathExpression(Node root, IReadOnlyList<string> vars)
    {
        _root = root;
        Variables = vars;
    }

    /// <summary>Parses <paramref name="text"/>; null when it is not an expression this parser understands.</summary>
    public static MathExpression? TryParse(string text)
    {
        if (string.IsNullOrWhiteSpace(text) || text.Length > MaxLength) return null;
        var p = new Parser(text);
        var node = p.ParseExpr();
        if (p.Failed || !p.RestIsIgnorable()) return null;
        var vars = new SortedSet<string>(StringComparer.Ordinal);
        Collect(node, vars);
        return new MathExpression(node, vars.ToList());
    }

    private static void Collect(Node n, SortedSet<string> vars)
    {
        switch (n)
        {
            case Var v: vars.Add(v.Name); break;
            case Bin b: Collect(b.A, vars); Collect(b.B, vars); break;
            case Neg g: Collect(g.A, vars); break;
            case Fn f: Collect(f.A, vars); if (f.B is not null) Collect(f.B, vars); break;
        }
    }

    /// <summary>The value with the given variable values (missing variables are NaN).</summary>
    public double Evaluate(IReadOnlyDictionary<string, double>? values = null) => Eval(_root, values);

    private static double Eval(Node n, IReadOnlyDictionary<string, double>? values)
    {
        switch (n)
        {
            case Num x: return x.V;
            case Var v: return values is not null && values.TryGetValue(v.Name, out var d) ? d : double.NaN;
            case Neg g: return -Eval(g.A, values);
            case Bin b:
                double a = Eval(b.A, values), c = Eval(b.B, values);
                return b.Op switch
                {
                    '+' => a + c,
                    '-' => a - c,
                    '*' => a * c,
                    '/' => a / c,
                    '^' => Math.Pow(a, c),
                    _ => double.NaN,
                };
            case Fn f:
                double x0 = Eval(f.A, values);
                double x1 = f.B is null ? double.NaN : Eval(f.B, values);
                return f.Name switch
                {
                    "sqrt" => Math.Sqrt(x0),
                    "root" => RealRoot(x0, x1),
                    "abs" => Math.Abs(x0),
                    "fact" => Factorial(x0),
                    "binom" => Factorial(x0) / (Factorial(x1) * Factorial(x0 - x1)),
                    "sin" => Math.Sin(x0), "cos" => Math.Cos(x0), "tan" => Math.Tan(x0),
                    "cot" => 1 / Math.Tan(x0), "sec" => 1 / Math.Cos(x0), "csc" => 1 / Math.Sin(x0),
                    "arcsin" => Math.Asin(x0), "arccos" => Math.Acos(x0), "arctan" => Math.Atan(x0),
                    "ln" => Math.Log(x0), "log" => Math.Log(x0), "logb" => Math.Log(x0) / Math.Log(x1),
                    "exp" => Math.Exp(x0),
                    _ when f.Name.StartsWith("apply:", StringComparison.Ordinal) => UnknownFunction(f.Name, x0),
                    _ => double.NaN,
                };
        }
        return double.NaN;
    }

    // An undefined function f(x): a fixed, name-dependent smooth function, so f(a) = f(a) but f(n+1) differs from n^2+n.
    private static double UnknownFunction(string name, double x)
    {
        int h = 17;
        foreach (char c in name) h = unchecked(h * 31 + c);
        double k = 1 + (h & 1023) / 1024.0;
        return Math.Sin(k * x + 0.3) * 1.7 + k * 0.1 * x * x;
    }

    // The n-th root, real for odd roots of negatives.
    private static double RealRoot(double x, double n)
    {
        if (x < 0 && n == Math.Round(n) && ((long)n & 1) == 1) return -Math.Pow(-x, 1 / n);
        return Math.Pow(x, 1 / n);
    }

    private static double Factorial(double x)
    {
        if (x < 0 || x != Math.Round(x) || x > 170) return double.NaN;
        double r = 1;
        for (int i = 2; i <= (int)x; i++) r *= i;
        return r;
    }

    private sealed class Parser(string s)
    {
        private int _i;
        private int _depth;

        public bool AtEnd => _i >= s.Length;

        public void SkipSpaces()
        {
            while (_i < s.Length && (char.IsWhiteSpace(s[_i]) || (s[_i] == '\\' && _i + 1 < s.Length && (s[_i + 1] is ',' or ';' or ' ' or '!' or ':'))))
                _i += char.IsWhiteSpace(s[_i]) ? 1 : 2;
        }

        private char Peek()
        {
            SkipSpaces();
            return _i < s.Length ? s[_i] : '\0';
        }

        private bool PeekCommand(string name)
        {
            SkipSpaces();
            if (string.CompareOrdinal(s, _i, "\\" + name, 0, name.Length + 1) != 0) return false;
            int after = _i + name.Length + 1;
            return after >= s.Length || !char.IsLetter(s[after]);
        }

        private bool _failed;

        /// <summary>Whether parsing failed; the parser then stops where it is (no exceptions: they cost microseconds).</summary>
        public bool Failed => _failed;

        private static readonly Node s_failedNode = new Num(double.NaN);

        private Node Fail()
        {
            _failed = true;
            return s_failedNode;
        }

        private bool Enter()
        {
            if (++_depth <= MaxDepth) return true;
            _failed = true;
            return false;
        }

        public Node ParseExpr()
        {
            if (!Enter()) return Fail();
            Node left = ParseTerm();
            while (!_failed)
            {
                char c = Peek();
                if (c is not ('+' or '-')) break;
                int save = _i, depth = _depth;
                _i++;
                Node right = ParseTerm();
                if (Backtracked(save, depth)) break;
                left = new Bin(c, left, right);
            }
            _depth--;
            return left;
        }

        // Like sympy's LaTeX parser, an operation whose right side does not parse ends the expression before the
        // operator ("5+" is 5, "2\sqrt3" is 2): undo the failed part and stop there.
        private bool Backtracked(int save, int depth)
        {
            if (!_failed) return false;
            _failed = false;
            _i = save;
            _depth = depth;
            return true;
        }

        private Node ParseTerm()
        {
            Node left = ParseUnary();
            while (!_failed)
            {
                int save = _i, depth = _depth;
                char op;
                Node right;
                char c = Peek();
                if (c == '*') { _i++; op = '*'; right = ParseUnary(); }
                else if (c == '/') { _i++; op = '/'; right = ParseUnary(); }
                else if (PeekCommand("cdot") || PeekCommand("times")) { _i += PeekCommand("cdot") ? 5 : 6; op = '*'; right = ParseUnary(); }
                else if (PeekCommand("div")) { _i += 4; op = '/'; right = ParseUnary(); }
                else if (StartsPrimary()) { op = '*'; right = ParsePower(); }
                else break;
                if (Backtracked(save, depth)) break;
                left = new Bin(op, left, right);
            }
            return left;
        }

        private static readonly string[] s_relations =
            { "<", ">", "=", "\\le", "\\ge", "\\ne", "\\lt", "\\gt", "\\in", "\\cup", "\\cap", "\\pm", "\\mp", "\\to", "\\approx", "\\equiv", "\\sim", "\\subset", "\\setminus" };

        /// <summary>
        /// Whether the text left after the expression may be ignored as sympy's LaTeX parser ignores a tail it cannot
        /// continue with ("x)" is x); a relation or set operation there makes it a different object, so not.
        /// </summary>
        public bool RestIsIgnorable()
        {
            SkipSpaces();
            if (AtEnd) return true;
            foreach (var r in s_relations)
                if (string.CompareOrdinal(s, _i, r, 0, r.Length) == 0) return false;
            return true;
        }

        private bool StartsPrimary()
        {
            char c = Peek();
            if (char.IsAsciiDigit(c) || c == '.' || char.IsLetter(c) || c == '(' || c == '{' || c == '[') return true;
            if (c == '\\')
            {
                int j = _i + 1;
                while (j < s.Length && char.IsLetter(s[j])) j++;
                string cmd = s.Substring(_i + 1, j - _i - 1);
                return cmd is not ("cdot" or "times" or "div" or "right" or "end" or "le" or "ge" or "ne" or "in" or "to" or "pm" or "mp" or "cup" or "cap");
            }
            return false;
        }

        private Node ParseUnary()
        {
            char c = Peek();
            if (c == '-') { _i++; if (!Enter()) return Fail(); var n = new Neg(ParseUnary()); _depth--; return n; }
            if (c == '+') { _i++; return ParseUnary(); }
            return ParsePower();
        }

        private Node ParsePower()
        {
            Node b = ParsePostfix();
            if (Peek() == '^')
            {
                _i++;
                if (!Enter()) return Fail();
                Node e = ParseExponent();
                _depth--;
                return new Bin('^', b, e);
            }
            return b;
        }

        // "^2", "^{n+1}", "^-1", "^\pi": a group, a signed single token, or a power of one.
        private Node ParseExponent()
        {
            char c = Peek();
            if (c == '{') return ParseGroup('{', '}');
            if (c == '-') { _i++; return new Neg(ParseExponent()); }
            if (char.IsAsciiDigit(c)) return ParseNumber(); // sympy: 2^10 is 2**10 (the whole number token)
            return ParsePower();
        }

        private Node ParsePostfix()
        {
            Node n = ParsePrimary();
            while (Peek() == '!') { _i++; n = new Fn("fact", n); }
            return n;
        }

        private Node ParseGroup(char open, char close)
        {
            if (Peek() != open) return Fail();
            _i++;
            Node n = ParseExpr();
            if (Peek() != close) return Fail();
            _i++;
            return n;
        }

        private Node ParsePrimary()
        {
            char c = Peek();
            if (c == '\0') return Fail();
            if (char.IsAsciiDigit(c) || c == '.') return ParseNumber();
            if (c == '(') return ParseGroup('(', ')');
            if (c == '[') return ParseGroup('[', ']');
            if (c == '{') return ParseGroup('{', '}');
            if (c == '|') return new Fn("abs", ParseGroup('|', '|'));
            if (char.IsLetter(c))
            {
                _i++;
                return Subscripted(c.ToString());
            }
            if (c == '\\') return ParseCommand();
            return Fail();
        }

        private Node Subscripted(string name)
        {
            if (Peek() != '_') return Applied(name);
            _i++;
            char c = Peek();
            if (c == '{')
            {
                int close = s.IndexOf('}', _i);
                if (close < 0) return Fail();
                name += "_" + s.Substring(_i + 1, close - _i - 1);
                _i = close + 1;
            }
            else if (c != '\0') { name += "_" + c; _i++; }
            else return Fail();
            return Applied(name);
        }

        // "f(x)": sympy's LaTeX parser applies a one-letter (or Greek, or subscripted) name to a parenthesized argument.
        private Node Applied(string name)
        {
            if (_i < s.Length && s[_i] == '(') return new Fn("apply:" + name, ParseGroup('(', ')'));
            return new Var(name);
        }

        // Digits with sympy's LaTeX number rules: ",ddd" groups join ("1,024" is 1024), and so does a thin space
        // between digits ("10\,000" is 10000, "1\,5" is 15).
        private Node ParseNumber()
        {
            var digits = new System.Text.StringBuilder();
            int start = _i;
            while (true)
            {
                while (_i < s.Length && char.IsAsciiDigit(s[_i])) digits.Append(s[_i++]);
                if (digits.Length == 0) break;
                if (_i + 3 < s.Length && s[_i] == ',' && char.IsAsciiDigit(s[_i + 1]) && char.IsAsciiDigit(s[_i + 2]) && char.IsAsciiDigit(s[_i + 3]))
                { _i++; continue; }
                if (_i + 2 < s.Length && s[_i] == '\\' && s[_i + 1] == ',' && char.IsAsciiDigit(s[_i + 2]))
                { _i += 2; continue; }
                break;
            }
            if (_i < s.Length && s[_i] == '.' && _i + 1 < s.Length && char.IsAsciiDigit(s[_i + 1]))
            {
                digits.Append('.');
                _i++;
                while (_i < s.Length && char.IsAsciiDigit(s[_i])) digits.Append(s[_i++]);
            }
            else if (_i < s.Length && s[_i] == '.' && _i > start) _i++; // "5." is 5
            if (digits.Length == 0) return Fail();
            if (!double.TryParse(digits.ToString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v))
                return Fail();
            return new Num(v);
        }

        private static readonly HashSet<string> s_functions = new(StringComparer.Ordinal)
        { "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "ln", "exp" };

        private static readonly HashSet<string> s_greek = new(StringComparer.Ordinal)
        {
            "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota", "kappa",
            "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi", "chi", "psi", "omega",
            "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega",
        };

        private Node ParseCommand()
        {
            int j = _i + 1;
            while (j < s.Length && char.IsLetter(s[j])) j++;
            string cmd = s.Substring(_i + 1, j - _i - 1);
            _i = j;
            switch (cmd)
            {
                case "frac" or "cfrac":
                {
                    Node a = ParseArg(), b = ParseArg();
                    return new Bin('/', a, b);
                }
                case "sqrt":
                {
                    // sympy's LaTeX grammar needs the braces: \sqrt3 does not parse ("2\sqrt3" is read as 2).
                    if (Peek() is not ('{' or '[')) return Fail();
                    if (Peek() == '[')
                    {
                        Node n = ParseGroup('[', ']');
                        return new Fn("root", ParseArg(), n);
                    }
                    return new Fn("sqrt", ParseArg());
                }
                case "binom" or "dbinom" or "tbinom":
                {
                    Node a = ParseArg(), b = ParseArg();
                    return new Fn("binom", a, b);
                }
                case "pi": return Subscripted("\\pi"); // sympy's LaTeX parser reads \pi as a symbol, not the constant
                case "infty": return new Num(double.PositiveInfinity);
                case "log":
                    if (Peek() == '_')
                    {
                        _i++;
                        Node baseNode = Peek() == '{' ? ParseGroup('{', '}') : ParseNumberOrLetter();
                        return new Fn("logb", ParseFunctionArg(), baseNode);
                    }
                    return new Fn("log", ParseFunctionArg());
                case "mathrm" or "mathit" or "operatorname":
                {
                    // \mathrm{x} as a name
                    if (Peek() != '{') return Fail();
                    int close = s.IndexOf('}', _i);
                    if (close < 0) return Fail();
                    string name = s.Substring(_i + 1, close - _i - 1);
                    _i = close + 1;
                    if (name.Length == 0 || !name.All(char.IsLetterOrDigit)) return Fail();
                    if (s_functions.Contains(name)) return new Fn(name, ParseFunctionArg());
                    return Subscripted(name);
                }
            }
            if (s_functions.Contains(cmd))
            {
                if (Peek() == '^')
                {
                    // \sin^2 x = (\sin x)^2
                    _i++;
                    Node e = ParseExponent();
                    return new Bin('^', new Fn(cmd, ParseFunctionArg()), e);
                }
                return new Fn(cmd, ParseFunctionArg());
            }
            if (s_greek.Contains(cmd)) return Subscripted("\\" + cmd);
            return Fail();
        }

        private Node ParseNumberOrLetter()
        {
            char c = Peek();
            if (char.IsAsciiDigit(c)) { _i++; return new Num(c - '0'); }
            if (char.IsLetter(c)) { _i++; return new Var(c.ToString()); }
            return Fail();
        }

        // A LaTeX macro argument: {group}, or a single digit/letter (\frac12 style), or a command.
        private Node ParseArg()
        {
            char c = Peek();
            if (c == '{') return ParseGroup('{', '}');
            if (char.IsAsciiDigit(c) || char.IsLetter(c)) return ParseNumberOrLetter();
            if (c == '\\') return ParseCommand();
            return Fail();
        }

        // A function argument: parenthesized, a group, or the next power term (\sin x, \ln 2).
        private Node ParseFunctionArg()
        {
            char c = Peek();
            if (c == '(') return ParseGroup('(', ')');
            if (c == '{') return ParseGroup('{', '}');
            if (!Enter()) return Fail();
            var n = ParsePower();
            _depth--;
            return n;
        }
    }
}
