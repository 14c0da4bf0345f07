using System.Globalization;

namespace Microsoft.ML.StepDpo.Answers;

/// <summary>Python's float() and int() on strings, as the answer graders' Python code relies on them.</summary>
internal static class PyNumbers
{
    /// <summary>Python float(s): surrounding whitespace, sign, digits with single "_" between them, ".", exponent, inf/infinity/nan.</summary>
    public static bool TryParseFloat(string s, out double value)
    {
        value = 0;
        var t = s.AsSpan().Trim();
        if (t.Length == 0 || t.Length > 400) return false;
        int i = 0;
        bool neg = false;
        if (t[0] == '+' || t[0] == '-') { neg = t[0] == '-'; i = 1; }
        var rest = t[i..];
        if (rest.Equals("inf", StringComparison.OrdinalIgnoreCase) || rest.Equals("infinity", StringComparison.OrdinalIgnoreCase))
        { value = neg ? double.NegativeInfinity : double.PositiveInfinity; return true; }
        if (rest.Equals("nan", StringComparison.OrdinalIgnoreCase)) { value = double.NaN; return true; }
        Span<char> buf = stackalloc char[t.Length];
        int n = 0;
        bool digitsBefore = false, digitsAfter = false, dot = false, exp = false;
        char prev = '\0';
        for (int k = 0; k < t.Length; k++)
        {
            char c = t[k];
            if (c == '_')
            {
                if (k + 1 >= t.Length || !char.IsAsciiDigit(prev) || !char.IsAsciiDigit(t[k + 1])) return false;
                prev = c;
                continue;
            }
            if (char.IsAsciiDigit(c)) { if (exp) { } else if (dot) digitsAfter = true; else digitsBefore = true; }
            else if (c == '.') { if (dot || exp) return false; dot = true; }
            else if (c == 'e' || c == 'E')
            {
                if (exp || !(digitsBefore || digitsAfter)) return false;
                exp = true;
            }
            else if (c == '+' || c == '-') { if (k != 0 && !(prev == 'e' || prev == 'E')) return false; }
            else return false;
            buf[n++] = c;
            prev = c;
        }
        if (!(digitsBefore || digitsAfter)) return false;
        if (exp && !char.IsAsciiDigit(buf[n - 1])) return false;
        return double.TryParse(buf[..n], NumberStyles.Float, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>Python int(s) for a base-10 string, rendered back as str(int(s)) (arbitrary size).</summary>
    public static bool TryParseInt(string s, out string canonical)
    {
        canonical = "";
        var t = s.AsSpan().Trim();
        if (t.Length == 0 || t.Length > 400) return false;
        bool neg = false;
        int i = 0;
        if (t[0] == '+' || t[0] == '-') { neg = t[0] == '-'; i = 1; }
        var digits = new System.Text.StringBuilder();
        char prev = '\0';
        for (int k = i; k < t.Length; k++)
        {
            char c = t[k];
            if (c == '_') { if (!char.IsAsciiDigit(prev) || k + 1 >= t.Length || !char.IsAsciiDigit(t[k + 1])) return false; prev = c; continue; }
            if (!char.IsAsciiDigit(c)) return false;
            digits.Append(c);
            prev = c;
        }
        if (digits.Length == 0) return false;
        string d = digits.ToString().TrimStart('0');
        if (d.Length == 0) { canonical = "0"; return true; }
        canonical = (neg ? "-" : "") + d;
        return true;
    }

    /// <summary>math.isclose(a, b, rel_tol) with abs_tol 0.</summary>
    public static bool IsClose(double a, double b, double relTol = 1e-4)
    {
        if (a == b) return true;
        if (double.IsInfinity(a) || double.IsInfinity(b) || double.IsNaN(a) || double.IsNaN(b)) return false;
        double diff = Math.Abs(a - b);
        return diff <= relTol * Math.Max(Math.Abs(a), Math.Abs(b));
    }
}
